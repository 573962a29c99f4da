package gitstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/secrets"
)

// Encryption at rest is envelope encryption: a random 256-bit data key
// seals every context file (and every side log segment) with AES-256-GCM,
// and the data keys are kept on refs/nexus/keys wrapped (AES-256-GCM) by
// a master key that never enters the repository. Sealed blobs carry the
// id of their data key, so a new data key can take over new writes while
// old blobs stay readable.

// Encryption says where the master key comes from. Exactly one of KeyFile
// and KeyCommand is set.
type Encryption struct {
	// KeyFile holds the 32-byte master key, raw or in base64. It must not
	// be readable or writable by group or others (mode 0600 or stricter).
	KeyFile string
	// KeyCommand is run with /bin/sh -c and prints the master key, raw or
	// in base64, on its standard output (a KMS client, a secret manager).
	// It gets the minimal environment of the node's children (PATH, HOME,
	// LANG, LC_*, TZ), nothing else of the server's.
	KeyCommand string
}

// MasterKeySize is the length of master and data keys: AES-256.
const MasterKeySize = 32

// keyCommandTimeout bounds a key command.
const keyCommandTimeout = 30 * time.Second

// masterKey is a loaded master key.
type masterKey [MasterKeySize]byte

// Validate checks that e names exactly one source of the key.
func (e Encryption) Validate() error {
	switch {
	case e.KeyFile == "" && e.KeyCommand == "":
		return nexus.Errorf(nexus.EInvalid, "encryption needs a master key: give a key file or a key command")
	case e.KeyFile != "" && e.KeyCommand != "":
		return nexus.Errorf(nexus.EInvalid, "encryption takes a key file or a key command, not both")
	}
	return nil
}

// loadMasterKey reads the master key from its file or command.
func loadMasterKey(e Encryption) (masterKey, error) {
	if err := e.Validate(); err != nil {
		return masterKey{}, err
	}
	if e.KeyFile != "" {
		return readKeyFile(e.KeyFile)
	}
	return runKeyCommand(e.KeyCommand)
}

func readKeyFile(path string) (masterKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return masterKey{}, nexus.WrapError(nexus.EInvalid, err, "cannot read key file %s", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return masterKey{}, nexus.Errorf(nexus.EInvalid, "key file %s has mode %04o: a key file must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return masterKey{}, nexus.WrapError(nexus.EInvalid, err, "cannot read key file %s", path)
	}
	k, err := parseKey(b)
	if err != nil {
		return masterKey{}, nexus.WrapError(nexus.EInvalid, err, "key file %s", path)
	}
	return k, nil
}

func runKeyCommand(command string) (masterKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keyCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	// The minimal environment of every child: the server's token and
	// provider keys are not the key command's to see.
	cmd.Env = secrets.ChildEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return masterKey{}, nexus.WrapError(nexus.EInvalid, err, "key command failed (%v): %s", err, msg)
	}
	k, err := parseKey(out)
	if err != nil {
		return masterKey{}, nexus.WrapError(nexus.EInvalid, err, "key command output")
	}
	return k, nil
}

// parseKey accepts 32 raw bytes or their standard base64 encoding, with
// surrounding white space.
func parseKey(b []byte) (masterKey, error) {
	var k masterKey
	if len(b) == MasterKeySize {
		copy(k[:], b)
		return k, nil
	}
	t := bytes.TrimSpace(b)
	raw, err := base64.StdEncoding.DecodeString(string(t))
	if err != nil || len(raw) != MasterKeySize {
		return k, fmt.Errorf("a master key is %d random bytes, raw or in base64 (got %d bytes that are neither)", MasterKeySize, len(b))
	}
	copy(k[:], raw)
	return k, nil
}

// NewMasterKey returns a fresh master key in base64, as a key file holds it.
func NewMasterKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(MasterKeySize)) + "\n"
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return b
}

// dataKey is one unwrapped data key, ready to seal and open.
type dataKey struct {
	id       uint32
	raw      []byte
	aead     cipher.AEAD
	nonceKey []byte
}

func newDataKey(id uint32, raw []byte) (*dataKey, error) {
	enc, err := hkdf.Key(sha256.New, raw, nil, "nexus seal v1 encryption", 32)
	if err != nil {
		return nil, err
	}
	nk, err := hkdf.Key(sha256.New, raw, nil, "nexus seal v1 nonce", 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(enc)
	if err != nil {
		return nil, err
	}
	return &dataKey{id: id, raw: raw, aead: aead, nonceKey: nk}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Sealed blob: sealMagic, the data key id (uint32 big-endian), a 12-byte
// nonce, then the ciphertext and its 16-byte tag. Magic and key id are the
// additional data. The nonce is HMAC-SHA256 of header and plaintext under a
// key derived from the data key (a synthetic IV): the same plaintext seals
// to the same bytes on every replica holding the same data key, and two
// different plaintexts get different nonces.
const sealMagic = "NXSEAL1\n"

const (
	sealHeader   = len(sealMagic) + 4
	sealOverhead = sealHeader + 12 + 16
)

// isSealed reports whether b starts like a sealed blob.
func isSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(sealMagic)) }

// keyring holds the data keys of an encrypted store.
type keyring struct {
	master  masterKey
	current *dataKey
	keys    map[uint32]*dataKey
	created map[uint32]time.Time
}

// seal encrypts plain under the current data key.
func (k *keyring) seal(plain []byte) []byte {
	dk := k.current
	var hdr [sealHeader]byte
	copy(hdr[:], sealMagic)
	binary.BigEndian.PutUint32(hdr[len(sealMagic):], dk.id)
	mac := hmac.New(sha256.New, dk.nonceKey)
	mac.Write(hdr[:])
	mac.Write(plain)
	nonce := mac.Sum(nil)[:12]
	out := make([]byte, 0, sealOverhead+len(plain))
	out = append(out, hdr[:]...)
	out = append(out, nonce...)
	return dk.aead.Seal(out, nonce, plain, hdr[:])
}

// errNotSealed: an encrypted store met a blob that is not sealed.
var errNotSealed = errors.New("file is not sealed, but the store is encrypted")

// open decrypts a sealed blob, checking it was sealed by one of the
// store's data keys and not altered since.
func (k *keyring) open(b []byte) ([]byte, error) {
	if !isSealed(b) {
		return nil, errNotSealed
	}
	if len(b) < sealOverhead {
		return nil, fmt.Errorf("sealed file is truncated (%d bytes)", len(b))
	}
	id := binary.BigEndian.Uint32(b[len(sealMagic):sealHeader])
	dk, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("sealed with data key %d, which the store's key ring does not hold", id)
	}
	plain, err := dk.aead.Open(nil, b[sealHeader:sealHeader+12], b[sealHeader+12:], b[:sealHeader])
	if err != nil {
		return nil, fmt.Errorf("sealed file fails authentication under data key %d (damaged or altered)", id)
	}
	return plain, nil
}

// keyCheck is the key check value of a master key: it tells a wrong key
// from a damaged key ring without revealing the key.
func keyCheck(m masterKey) []byte {
	mac := hmac.New(sha256.New, m[:])
	mac.Write([]byte("nexus master key check v1"))
	return mac.Sum(nil)[:16]
}

func wrapAAD(id uint32) []byte { return fmt.Appendf(nil, "nexus data key %d", id) }
