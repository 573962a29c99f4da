package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinVersion is the oldest protocol version spoken: TLS 1.2.
const MinVersion = tls.VersionTLS12

// The files of a TLS configuration, as named in a [FileError].
const (
	FileCert     = "certificate"
	FileKey      = "key"
	FileClientCA = "client CA"
	FileCA       = "CA"
)

// Files are the PEM files a server's TLS is made of.
type Files struct {
	// Cert is the certificate chain the server presents, leaf first.
	Cert string
	// Key is the private key of the leaf certificate.
	Key string
	// ClientCA, if set, holds the CA certificates client certificates
	// must be signed by; a client without one is refused at the
	// handshake. "" accepts clients without certificates.
	ClientCA string
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// FileError is a file of a TLS configuration that cannot be used.
type FileError struct {
	File string // FileCert, FileKey, FileClientCA or FileCA
	Path string // "" when the file is missing from the configuration
	Err  error
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s file: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s file %s: %v", e.File, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Check reads and parses the files of f, as a server would. It returns a
// *FileError for each of the certificate and key that is not set, or else
// one for the first file that cannot be used: unreadable, not PEM of the
// right kind, or a key that does not go with the certificate.
func Check(f Files) []error {
	_, errs := load(f)
	return errs
}

// load reads and parses the files of f.
func load(f Files) (*loaded, []error) {
	var errs []error
	if f.Cert == "" {
		errs = append(errs, &FileError{File: FileCert, Err: errors.New("required to serve TLS")})
	}
	if f.Key == "" {
		errs = append(errs, &FileError{File: FileKey, Err: errors.New("required to serve TLS")})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	raw, err := readFiles(f)
	if err != nil {
		return nil, []error{err}
	}
	l, err := build(f, raw)
	if err != nil {
		return nil, []error{err}
	}
	return l, nil
}

// contents are the bytes of a server's files, as read together.
type contents struct{ cert, key, ca []byte }

func (c contents) equal(o contents) bool {
	return bytes.Equal(c.cert, o.cert) && bytes.Equal(c.key, o.key) && bytes.Equal(c.ca, o.ca)
}

// readFiles reads the files of f.
func readFiles(f Files) (contents, error) {
	var c contents
	for _, r := range []struct {
		file, path string
		dst        *[]byte
	}{{FileCert, f.Cert, &c.cert}, {FileKey, f.Key, &c.key}, {FileClientCA, f.ClientCA, &c.ca}} {
		if r.path == "" {
			continue
		}
		b, err := os.ReadFile(r.path)
		if err != nil {
			return c, &FileError{File: r.file, Path: r.path, Err: unwrapPath(err)}
		}
		*r.dst = b
	}
	return c, nil
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// loaded is one usable set of a server's files.
type loaded struct {
	raw  contents
	cfg  *tls.Config // without NextProtos
	leaf *x509.Certificate
}

// build parses raw, the contents of f's files, into a server's
// configuration.
func build(f Files, raw contents) (*loaded, error) {
	if len(bytes.TrimSpace(raw.cert)) == 0 {
		return nil, &FileError{File: FileCert, Path: f.Cert, Err: errors.New("empty")}
	}
	if len(bytes.TrimSpace(raw.key)) == 0 {
		return nil, &FileError{File: FileKey, Path: f.Key, Err: errors.New("empty")}
	}
	cert, err := tls.X509KeyPair(raw.cert, raw.key)
	if err != nil {
		return nil, pairError(f, raw, err)
	}
	cfg := &tls.Config{MinVersion: MinVersion, Certificates: []tls.Certificate{cert}}
	if f.ClientCA != "" {
		pool, err := certPool(raw.ca)
		if err != nil {
			return nil, &FileError{File: FileClientCA, Path: f.ClientCA, Err: err}
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loaded{raw: raw, cfg: cfg, leaf: cert.Leaf}, nil
}

// pairError says which file of a pair tls.X509KeyPair refused.
func pairError(f Files, raw contents, err error) error {
	if !hasBlock(raw.cert, func(t string) bool { return t == "CERTIFICATE" }) {
		return &FileError{File: FileCert, Path: f.Cert, Err: errors.New("no PEM certificate in it")}
	}
	if !hasBlock(raw.key, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return &FileError{File: FileKey, Path: f.Key, Err: errors.New("no PEM private key in it")}
	}
	return &FileError{File: FileKey, Path: f.Key, Err: fmt.Errorf("does not go with the certificate %s: %w", f.Cert, err)}
}

// hasBlock reports whether b holds a PEM block of a type that is.
func hasBlock(b []byte, is func(typ string) bool) bool {
	for {
		var p *pem.Block
		if p, b = pem.Decode(b); p == nil {
			return false
		}
		if is(p.Type) {
			return true
		}
	}
}

// certPool parses PEM CA certificates; it refuses a file with none.
func certPool(pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// Client is the configuration of a client of a Nexus server. caFile, if
// set, holds the CA certificates the server's certificate must be signed
// by ("" trusts the system's roots); certFile and keyFile, set together,
// are the certificate the client presents to a server that demands one.
func Client(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &FileError{File: FileCA, Path: caFile, Err: unwrapPath(err)}
		}
		if cfg.RootCAs, err = certPool(b); err != nil {
			return nil, &FileError{File: FileCA, Path: caFile, Err: err}
		}
	}
	switch {
	case certFile == "" && keyFile == "":
		return cfg, nil
	case certFile == "":
		return nil, &FileError{File: FileCert, Err: errors.New("required with a client key")}
	case keyFile == "":
		return nil, &FileError{File: FileKey, Err: errors.New("required with a client certificate")}
	}
	raw, err := readFiles(Files{Cert: certFile, Key: keyFile})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(raw.cert, raw.key)
	if err != nil {
		return nil, pairError(Files{Cert: certFile, Key: keyFile}, raw, err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}
