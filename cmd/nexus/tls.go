package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/tlsconf"
)

// clientTLS are the TLS flags of a client of the server.
type clientTLS struct{ ca, cert, key string }

// addClientTLSFlags registers --ca, --cert and --key on fs.
func addClientTLSFlags(fs *flag.FlagSet) *clientTLS {
	t := &clientTLS{}
	fs.StringVar(&t.ca, "ca", os.Getenv("NEXUS_CA"), "PEM file of the CA that signed the server's certificate, for an https:// server (env NEXUS_CA; default: the system's roots)")
	fs.StringVar(&t.cert, "cert", os.Getenv("NEXUS_CLIENT_CERT"), "PEM client certificate for a server that demands one (env NEXUS_CLIENT_CERT)")
	fs.StringVar(&t.key, "key", os.Getenv("NEXUS_CLIENT_KEY"), "PEM key of --cert (env NEXUS_CLIENT_KEY)")
	return t
}

// clientTLSOf reads the TLS flags addClientTLSFlags put on fs.
func clientTLSOf(fs *flag.FlagSet) *clientTLS {
	val := func(name string) string { return fs.Lookup(name).Value.String() }
	return &clientTLS{ca: val("ca"), cert: val("cert"), key: val("key")}
}

// options are the client options of the flags: none when unset.
func (t *clientTLS) options() []httpapi.ClientOption {
	var opts []httpapi.ClientOption
	if t.ca != "" {
		opts = append(opts, httpapi.WithCAFile(t.ca))
	}
	if t.cert != "" || t.key != "" {
		opts = append(opts, httpapi.WithClientCert(t.cert, t.key))
	}
	return opts
}

// config is the TLS configuration of the flags; a bad file is a usage
// error naming its flag.
func (t *clientTLS) config() (*tls.Config, error) {
	cfg, err := tlsconf.Client(t.ca, t.cert, t.key)
	var fe *tlsconf.FileError
	if errors.As(err, &fe) {
		flag := map[string]string{tlsconf.FileCA: "--ca", tlsconf.FileCert: "--cert", tlsconf.FileKey: "--key"}[fe.File]
		return nil, usagef("%s: %v", flag, err)
	}
	return cfg, err
}

// tlsTrouble describes a request refused at the TLS handshake: which side
// refused and the flag that fixes it.
func tlsTrouble(err error, server string) (string, bool) {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("the certificate of the server at %s expired: %v\n"+
			"The server needs a renewed certificate (docs/RUNBOOK.md: the TLS certificate expired).", server, invalid), true
	case errors.As(err, &unknown) || errors.As(err, &verify):
		return fmt.Sprintf("the server at %s presents a certificate this client does not trust: %v\n"+
			"Pass the CA that signed it with --ca (env NEXUS_CA).", server, innermost(err)), true
	case errors.As(err, &host):
		return fmt.Sprintf("the certificate of the server at %s is not for that name: %v\n"+
			"Use a --server name the certificate lists.", server, host), true
	case strings.Contains(err.Error(), "remote error: tls:"):
		return fmt.Sprintf("the server at %s refused the TLS handshake (%v)\n"+
			"If it demands a client certificate, pass one signed by its client CA with --cert and --key (env NEXUS_CLIENT_CERT, NEXUS_CLIENT_KEY).", server, innermost(err)), true
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Sprintf("the server at %s speaks plain HTTP: use an http:// --server URL", server), true
	}
	return "", false
}

// innermost is the last error of err's chain.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// tlsFromFile takes the TLS files of the configuration file where the
// flags set none: a certificate and key given as flags come as a pair.
func tlsFromFile(nc *node.Config, t config.TLS) {
	if nc.TLSCert == "" && nc.TLSKey == "" {
		nc.TLSCert, nc.TLSKey = t.CertFile, t.KeyFile
	}
	if nc.TLSClientCA == "" {
		nc.TLSClientCA = t.ClientCAFile
	}
}

// scheme is the scheme of the URLs of the node nc configures.
func scheme(nc node.Config) string {
	if nc.TLSCert != "" {
		return "https"
	}
	return "http"
}

// reloadTLSOnHangup makes SIGHUP take up the node's TLS files again, and
// returns what stops it. A node without TLS leaves SIGHUP alone.
func reloadTLSOnHangup(n *node.Node, nc node.Config) (stop func()) {
	if nc.TLSCert == "" {
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if changed, err := n.ReloadTLS(); err == nil && !changed {
					nc.Logger.Info("SIGHUP: the TLS files did not change")
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}
