package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nexus-mem/nexus/gitstore"
)

// keySource is the flags naming the master key of a store encrypted at
// rest, for the verbs that open a data directory.
type keySource struct{ file, command *string }

func keyFlags(fs *flag.FlagSet) keySource {
	return keySource{
		file:    fs.String("key-file", env("NEXUS_KEY_FILE", ""), "master key file of a store encrypted at rest (env NEXUS_KEY_FILE)"),
		command: fs.String("key-command", env("NEXUS_KEY_COMMAND", ""), "command printing the master key of a store encrypted at rest (env NEXUS_KEY_COMMAND)"),
	}
}

// encryption is nil when no key is given: the store must not be encrypted.
func (k keySource) encryption() *gitstore.Encryption {
	if *k.file == "" && *k.command == "" {
		return nil
	}
	return &gitstore.Encryption{KeyFile: *k.file, KeyCommand: *k.command}
}

func runRekey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rekey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	oldFile := fs.String("old-key-file", env("NEXUS_KEY_FILE", ""), "the current master key file (env NEXUS_KEY_FILE)")
	oldCommand := fs.String("old-key-command", env("NEXUS_KEY_COMMAND", ""), "command printing the current master key (env NEXUS_KEY_COMMAND)")
	newFile := fs.String("key-file", "", "the new master key file (32 random bytes, raw or base64, mode 0600)")
	newCommand := fs.String("key-command", "", "command printing the new master key")
	dataKey := fs.Bool("new-data-key", false, "also make a new data key that seals every later write (earlier contexts keep theirs)")
	genKey := fs.Bool("generate", false, "print a new random master key in base64 and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus rekey --data DIR --old-key-file OLD --key-file NEW [--new-data-key]\n"+
			"       nexus rekey --generate > NEW && chmod 600 NEW\n"+
			"Wraps the data keys of a store encrypted at rest under a new master key (no context is rewritten).")
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *genKey {
		_, err := io.WriteString(stdout, gitstore.NewMasterKey())
		return err
	}
	if *newFile == "" && *newCommand == "" {
		return usagef("--key-file or --key-command is required: the new master key")
	}
	if *oldFile == "" && *oldCommand == "" {
		return usagef("--old-key-file or --old-key-command is required: the current master key")
	}
	if err := needStore(*data); err != nil {
		return err
	}
	store, err := gitstore.Open(*data, gitstore.Options{Encrypt: &gitstore.Encryption{KeyFile: *oldFile, KeyCommand: *oldCommand}})
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("rekey", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := store.Rekey(ctx, gitstore.Encryption{KeyFile: *newFile, KeyCommand: *newCommand}, *dataKey)
	if err != nil {
		return err
	}
	ids := make([]string, len(info.DataKey))
	for i, id := range info.DataKey {
		ids[i] = fmt.Sprint(id)
	}
	fmt.Fprintf(stdout, "data keys %s wrapped under the new master key; new writes are sealed with data key %d\n"+
		"the old master key no longer opens %s\n", strings.Join(ids, ", "), info.Current, *data)
	return store.Close()
}
