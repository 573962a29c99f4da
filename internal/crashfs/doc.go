// Package crashfs is a FUSE file system for tests that simulates a power
// loss: it passes every operation through to a backing directory, keeps a
// model of what a strict POSIX file system would have made durable, and on
// [FS.Crash] writes only that durable state into a fresh directory.
//
// # Basics
//
// [Mount] (or [MountTest] in a test) mounts a loopback of a backing
// directory. Everything already in the backing directory counts as
// durable. From then on the model changes at exactly two moments:
//
//   - fsync or fdatasync of a file records its contents as they are at
//     that moment, per inode: data written, truncated (O_TRUNC, truncate,
//     ftruncate) or appended afterwards is not durable until the next
//     fsync. A file never fsynced is durable as an empty file, if a
//     durable directory entry names it at all.
//   - fsync of a directory records its entries (name → inode) as they are
//     at that moment. Entries created, renamed (including renameat2 with
//     RENAME_EXCHANGE or RENAME_NOREPLACE), hard-linked or removed since the
//     directory's last fsync are reverted by a crash. A new directory holds
//     nothing durable until it is fsynced itself, and exists only if its
//     parent was fsynced after it was created.
//
// Identity is the inode, not the name: a file renamed into place keeps the
// data fsynced under its temp name, an unlinked file that is still open
// can be fsynced and comes back under its old name if the unlink was not
// made durable, and an inode number the backing file system reuses for a
// new file is a new inode to the model.
//
// [FS.Crash] cuts the power: from then on every operation that would
// change the file system or make something durable fails with EIO, and
// the durable state is materialised into a new directory — the disk as
// the next boot would find it. Open a store on that directory to check
// what survived, or mount it again for the next round.
//
// # Caveats
//
// The model is deliberately the weakest file system POSIX allows: ext4 or
// XFS commit more than was asked (a journal commit carries earlier
// operations with it), so code that passes here is safe there, not the
// other way round. A crash never tears a write in half: what was fsynced
// survives whole, what was not is gone whole. Extended attributes, times
// and ownership are not modelled; file modes are taken at the last fsync.
// A directory reachable under two durable names (a directory rename made
// durable in the new parent only) is materialised at the first name in
// lexical order. O_TMPFILE is refused. The backing directory is scratch:
// fsyncs are recorded in the model, not passed to it.
//
// Mounting needs /dev/fuse and root (the mount(2) call is made directly),
// or a fusermount binary; [MountTest] skips the test when neither works,
// and fails it when the environment variable CI is set.
package crashfs
