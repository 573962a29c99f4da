package gitstore

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nexus-mem/nexus"
)

// KeysRef is the side ref that holds the key ring of an encrypted store:
// one commit, without parent, whose tree holds keyringFile. Its presence
// marks the store as encrypted.
const KeysRef = "keys"

const keyringFile = "keyring.json"

const keyringVersion = 1

// keyringDoc is the stored key ring. Every data key is wrapped by the
// master key (AES-256-GCM, random nonce, the key id as additional data);
// Check is the master key's check value.
type keyringDoc struct {
	Version int          `json:"version"`
	Check   string       `json:"check"`
	Current uint32       `json:"current"`
	Keys    []wrappedKey `json:"keys"`
}

type wrappedKey struct {
	ID      uint32    `json:"id"`
	Created time.Time `json:"created"`
	Wrapped string    `json:"wrapped"` // base64 of nonce, ciphertext and tag
}

// KeyInfo describes the key ring of an encrypted store.
type KeyInfo struct {
	Current uint32   `json:"current"`  // the data key new writes are sealed with
	DataKey []uint32 `json:"data_key"` // every data key the ring holds, oldest first
}

// newKeyring makes a key ring with one fresh data key.
func newKeyring(m masterKey, now time.Time) (*keyring, error) {
	k := &keyring{master: m, keys: map[uint32]*dataKey{}, created: map[uint32]time.Time{}}
	return k, k.addDataKey(now)
}

// addDataKey adds a fresh data key and makes it current.
func (k *keyring) addDataKey(now time.Time) error {
	id := uint32(1)
	if k.current != nil {
		id = slices.Max(slices.Collect(maps.Keys(k.keys))) + 1
	}
	dk, err := newDataKey(id, randomBytes(MasterKeySize))
	if err != nil {
		return err
	}
	k.keys[id], k.created[id], k.current = dk, now.UTC(), dk
	return nil
}

func (k *keyring) info() KeyInfo {
	ids := slices.Sorted(maps.Keys(k.keys))
	return KeyInfo{Current: k.current.id, DataKey: ids}
}

// encode wraps every data key under the key ring's master key.
func (k *keyring) encode() ([]byte, error) {
	aead, err := newGCM(k.master[:])
	if err != nil {
		return nil, err
	}
	doc := keyringDoc{Version: keyringVersion, Check: base64.StdEncoding.EncodeToString(keyCheck(k.master)), Current: k.current.id}
	for _, id := range slices.Sorted(maps.Keys(k.keys)) {
		nonce := randomBytes(aead.NonceSize())
		w := aead.Seal(nonce, nonce, k.keys[id].raw, wrapAAD(id))
		doc.Keys = append(doc.Keys, wrappedKey{ID: id, Created: k.created[id], Wrapped: base64.StdEncoding.EncodeToString(w)})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n'), err
}

// decodeKeyring unwraps a stored key ring with master key m. A wrong key
// is told apart from a damaged ring by the check value.
func decodeKeyring(b []byte, m masterKey) (*keyring, error) {
	var doc keyringDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("key ring does not parse: %w", err)
	}
	if doc.Version != keyringVersion {
		return nil, fmt.Errorf("key ring has version %d; this build reads version %d", doc.Version, keyringVersion)
	}
	check, err := base64.StdEncoding.DecodeString(doc.Check)
	if err != nil {
		return nil, fmt.Errorf("key ring check value does not parse: %w", err)
	}
	if !hmac.Equal(check, keyCheck(m)) {
		return nil, errWrongKey
	}
	aead, err := newGCM(m[:])
	if err != nil {
		return nil, err
	}
	k := &keyring{master: m, keys: map[uint32]*dataKey{}, created: map[uint32]time.Time{}}
	for _, w := range doc.Keys {
		raw, err := base64.StdEncoding.DecodeString(w.Wrapped)
		if err != nil || len(raw) < aead.NonceSize() {
			return nil, fmt.Errorf("data key %d: wrapped key does not parse", w.ID)
		}
		plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], wrapAAD(w.ID))
		if err != nil || len(plain) != MasterKeySize {
			return nil, fmt.Errorf("data key %d does not unwrap although the master key matches the check value: the key ring is damaged", w.ID)
		}
		dk, err := newDataKey(w.ID, plain)
		if err != nil {
			return nil, err
		}
		k.keys[w.ID], k.created[w.ID] = dk, w.Created
	}
	if k.current = k.keys[doc.Current]; k.current == nil {
		return nil, fmt.Errorf("key ring names data key %d as current but does not hold it", doc.Current)
	}
	return k, nil
}

var errWrongKey = fmt.Errorf("the master key does not match the key ring's check value")

// openKeys loads the key ring, or creates it when encryption is asked for
// a new store. It runs in Open, before the writer starts.
func (s *Store) openKeys(head Hash) error {
	stored, err := s.readKeyring()
	if err != nil {
		return err
	}
	enc := s.opts.Encrypt
	switch {
	case stored == nil && enc == nil:
		return nil
	case stored != nil && enc == nil:
		return nexus.Errorf(nexus.EInvalid, "the store in %s is encrypted at rest: open it with its master key (--encrypt with --key-file or --key-command)", s.dir)
	}
	m, err := loadMasterKey(*enc)
	if err != nil {
		return err
	}
	if stored != nil {
		k, err := decodeKeyring(stored, m)
		if err == errWrongKey {
			return nexus.WrapError(nexus.EInvalid, err, "wrong master key for the store in %s: it does not match the key ring on %s%s", s.dir, sidePrefix, KeysRef)
		}
		if err != nil {
			return nexus.WrapError(nexus.EUnavailable, err, "cannot read the key ring of the store in %s", s.dir)
		}
		s.keys.Store(k)
		return nil
	}
	if !head.IsZero() {
		return nexus.Errorf(nexus.EInvalid, "the store in %s already holds contexts that are not encrypted; encryption at rest can only be turned on for a new store", s.dir)
	}
	k, err := newKeyring(m, s.opts.Now())
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "create data key")
	}
	if err := s.writeKeyring(k); err != nil {
		return err
	}
	s.keys.Store(k)
	s.log.Info("encryption at rest turned on", "data_key", k.current.id)
	return nil
}

// readKeyring returns the stored key ring, or nil when the store has none.
func (s *Store) readKeyring() ([]byte, error) {
	h, err := s.repo.readNamedRef(sidePrefix + KeysRef)
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, err, "read %s%s", sidePrefix, KeysRef)
	}
	if h.IsZero() {
		return nil, nil
	}
	cm, err := s.readCommit(h)
	if err != nil {
		return nil, err
	}
	data, err := s.repo.readTyped(cm.tree, objTree)
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, err, "read the key ring tree")
	}
	ents, err := decodeTree(data)
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, &CorruptError{Object: cm.tree, Err: err}, "read the key ring tree")
	}
	for _, e := range ents {
		if e.name == keyringFile && !e.dir {
			b, err := s.repo.readTyped(e.hash, objBlob)
			if err != nil {
				return nil, nexus.WrapError(nexus.EUnavailable, err, "read the key ring")
			}
			return b, nil
		}
	}
	return nil, nexus.Errorf(nexus.EUnavailable, "%s%s holds no %s: the key ring is lost (restore it from a backup)", sidePrefix, KeysRef, keyringFile)
}

// writeKeyring replaces the stored key ring by k, in a commit without
// parent: the previous ring, wrapped under what may be a retired master
// key, is no longer reachable from any ref.
func (s *Store) writeKeyring(k *keyring) error {
	b, err := k.encode()
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "encode key ring")
	}
	_, err = s.commitSide(&sideWrite{name: KeysRef, files: map[string][]byte{keyringFile: b}, message: "key ring", replace: true})
	return err
}

// Encrypted reports whether the store encrypts contexts at rest.
func (s *Store) Encrypted() bool { return s.keys.Load() != nil }

// KeyInfo describes the key ring; ok is false for a store that is not
// encrypted.
func (s *Store) KeyInfo() (info KeyInfo, ok bool) {
	k := s.keys.Load()
	if k == nil {
		return KeyInfo{}, false
	}
	return k.info(), true
}

// Rekey wraps the store's data keys under the master key next names (no
// context is rewritten). With newDataKey it also adds a fresh data key
// that seals every later write; contexts sealed before keep their key.
func (s *Store) Rekey(ctx context.Context, next Encryption, newDataKey bool) (KeyInfo, error) {
	cur := s.keys.Load()
	if cur == nil {
		return KeyInfo{}, nexus.Errorf(nexus.EInvalid, "the store in %s is not encrypted: there is no key to rotate", s.dir)
	}
	m, err := loadMasterKey(next)
	if err != nil {
		return KeyInfo{}, err
	}
	k := &keyring{master: m, current: cur.current, keys: maps.Clone(cur.keys), created: maps.Clone(cur.created)}
	if newDataKey {
		if err := k.addDataKey(s.opts.Now()); err != nil {
			return KeyInfo{}, nexus.WrapError(nexus.EInternal, err, "create data key")
		}
	}
	if _, err := s.submit(ctx, &request{rekey: k}); err != nil {
		return KeyInfo{}, err
	}
	return k.info(), nil
}

// commitRekey stores a new key ring and, once it is durable, seals later
// writes with its current data key. It runs on the writer.
func (s *Store) commitRekey(k *keyring) error {
	if err := s.writeKeyring(k); err != nil {
		return err
	}
	s.keys.Store(k)
	s.log.Info("key ring rewrapped", "data_key", k.current.id, "data_keys", len(k.keys))
	return nil
}

// seal returns what is stored for the file b: b itself, or b sealed when
// the store is encrypted.
func (s *Store) seal(b []byte) []byte {
	if k := s.keys.Load(); k != nil {
		return k.seal(b)
	}
	return b
}

// unseal returns the plaintext of a stored file.
func (s *Store) unseal(b []byte) ([]byte, error) {
	if k := s.keys.Load(); k != nil {
		return k.open(b)
	}
	return b, nil
}

// FileSealer seals files kept beside the repository (the saved search
// index) with the store's current data key; it opens them with whichever
// data key sealed them.
type FileSealer struct{ s *Store }

// FileSealer returns the sealer of an encrypted store, nil otherwise.
func (s *Store) FileSealer() *FileSealer {
	if !s.Encrypted() {
		return nil
	}
	return &FileSealer{s}
}

// Seal encrypts plain.
func (f *FileSealer) Seal(plain []byte) []byte { return f.s.seal(plain) }

// Unseal decrypts what Seal returned, and fails if it was altered.
func (f *FileSealer) Unseal(b []byte) ([]byte, error) { return f.s.unseal(b) }
