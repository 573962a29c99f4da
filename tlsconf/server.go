package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"sync"
)

// Server is the TLS side of a listener: the certificate in its files,
// taken up again whenever they change on disk.
type Server struct {
	files Files
	log   *slog.Logger

	mu     sync.Mutex
	cur    *loaded
	bad    [sha256.Size]byte // the contents last refused, logged once
	badErr error
}

// NewServer loads f and returns a server presenting its certificate; log
// (nil: none) hears of every certificate taken up later and of files
// refused.
func NewServer(f Files, log *slog.Logger) (*Server, error) {
	l, errs := load(f)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{files: f, log: log, cur: l}, nil
}

// Config is the configuration of a listener that speaks the application
// protocols nextProtos (ALPN, such as "h2" and "http/1.1"). Each
// handshake first takes up what changed in the files.
func (s *Server) Config(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			l, _ := s.refresh("handshake") // refused files are logged; the last good ones serve
			c := l.cfg.Clone()
			c.NextProtos = nextProtos
			return c, nil
		},
	}
}

// Reload takes up what changed in the files now, as the next handshake
// would. It returns whether a new certificate or client CA was taken up,
// and why the files were refused if they were (the last good ones stay).
func (s *Server) Reload() (bool, error) {
	s.mu.Lock()
	before := s.cur
	s.mu.Unlock()
	l, err := s.refresh("reload")
	return l != before, err
}

// Leaf is the certificate presented now.
func (s *Server) Leaf() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.leaf
}

// refresh rereads the files and takes them up if they changed and are
// good; it returns what serves now, and the error of refused files.
func (s *Server) refresh(why string) (*loaded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := readFiles(s.files)
	if err == nil && raw.equal(s.cur.raw) {
		s.badErr = nil // files refused before are logged again if they return
		return s.cur, nil
	}
	var l *loaded
	if err == nil {
		l, err = build(s.files, raw)
	}
	if err != nil {
		s.refused(raw, err)
		return s.cur, err
	}
	s.cur, s.badErr = l, nil
	s.log.Info("tls: certificate taken up", "on", why, "subject", l.leaf.Subject.String(),
		"serial", l.leaf.SerialNumber.String(), "not_after", l.leaf.NotAfter, "client_ca", s.files.ClientCA != "")
	return l, nil
}

// refused logs files that cannot be taken up, once for each contents.
func (s *Server) refused(raw contents, err error) {
	h := sha256.New()
	for _, b := range [][]byte{raw.cert, {0}, raw.key, {0}, raw.ca, []byte(err.Error())} {
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == s.bad && s.badErr != nil {
		return
	}
	s.bad, s.badErr = sum, err
	s.log.Warn("tls: files refused, the last good certificate serves on", "err", err)
}
