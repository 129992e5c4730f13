package topology

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
)

// CertHosts returns, per role (each cloud, RoleGlobal), the hosts its
// listeners use: the names its certificate must carry.
func CertHosts(cfg *config.Config) map[string][]string {
	host := func(addr string) string {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		return h
	}
	out := map[string][]string{}
	add := func(role, addr string) {
		if addr == "" {
			return
		}
		if h := host(addr); !slices.Contains(out[role], h) {
			out[role] = append(out[role], h)
		}
	}
	for name, c := range cfg.Clouds {
		out[name] = nil
		add(name, c.API)
		add(name, c.Origin)
	}
	out[RoleGlobal] = nil
	add(RoleGlobal, cfg.FrontDoor.Listen)
	add(RoleGlobal, cfg.Edge.Listen)
	add(RoleGlobal, cfg.Logs.Listen)
	return out
}

// InitCerts makes the certificates of cfg's TLS directory that are
// missing (the CA on first use), unless TLS is off or one certificate is
// configured for all. Processes that share the directory make them once.
func InitCerts(cfg *config.Config) (certs.Made, error) {
	if cfg.TLS.Disabled || cfg.TLS.Cert != "" {
		return certs.Made{}, nil
	}
	unlock, err := lockDir(cfg.TLS.Dir)
	if err != nil {
		return certs.Made{}, err
	}
	defer unlock()
	made, err := certs.Init(cfg.TLS.Dir, CertHosts(cfg), time.Now())
	if err != nil {
		return made, fmt.Errorf("topology: %w", err)
	}
	return made, nil
}

// RotateCerts replaces every role's certificate (and with newCA the CA,
// kept next to the old one until PruneCerts).
func RotateCerts(cfg *config.Config, newCA bool) (certs.Made, error) {
	unlock, err := lockDir(cfg.TLS.Dir)
	if err != nil {
		return certs.Made{}, err
	}
	defer unlock()
	made, err := certs.Rotate(cfg.TLS.Dir, CertHosts(cfg), newCA, time.Now())
	if err != nil {
		return made, fmt.Errorf("topology: %w", err)
	}
	return made, nil
}

// lockDir takes a lock directory in dir for the certificate files (a
// stale lock, older than a minute, is broken).
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("topology: certs: %w", err)
	}
	lock := filepath.Join(dir, ".lock")
	deadline := time.Now().Add(time.Minute)
	for {
		err := os.Mkdir(lock, 0o700)
		if err == nil {
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("topology: certs: %w", err)
		}
		if fi, err := os.Stat(lock); err == nil && time.Since(fi.ModTime()) > time.Minute {
			_ = os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("topology: certs: %s is held by another process", lock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsSource returns the certificate source of a role: the one configured
// for all, else the role's files in the TLS directory.
func tlsSource(cfg *config.Config, role string) (*certs.Source, error) {
	c := cfg.TLS
	ca := caFile(cfg)
	if c.Cert != "" {
		return certs.NewSource(c.Cert, c.Key, ca)
	}
	return certs.NewSource(certs.CertFile(c.Dir, role), certs.KeyFile(c.Dir, role), ca)
}

// ClientFor returns an HTTP client for the endpoints of cfg: with TLS on,
// it trusts the project CA and presents a certificate of the TLS
// directory (the global role's, else the first cloud's that is there).
func ClientFor(cfg *config.Config) (*http.Client, error) {
	if cfg.TLS.Disabled {
		return &http.Client{Timeout: 60 * time.Second}, nil
	}
	var errs []error
	for _, role := range append([]string{RoleGlobal}, cfg.CloudNames()...) {
		src, err := tlsSource(cfg, role)
		if err == nil {
			return &http.Client{Transport: src.Transport(false), Timeout: 60 * time.Second}, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("topology: no certificate to call the endpoints with (run intercloud certs init): %w", errors.Join(errs...))
}

// Scheme is the URL scheme of the topology's listeners: https, or http
// with TLS off.
func Scheme(cfg *config.Config) string {
	if cfg.TLS.Disabled {
		return "http"
	}
	return "https"
}

// serverRole returns the role whose certificate a server uses and whether
// it refuses clients without a certificate of the project: the APIs, the
// result store's origin and the log store are reached by the other parts
// only (mutual TLS); the front door and the edge serve everyone.
func serverRole(name string) (role string, requireClient bool) {
	switch {
	case name == "frontdoor" || name == "edge":
		return RoleGlobal, false
	case name == "logs":
		return RoleGlobal, true
	case strings.HasSuffix(name, "-api"):
		return strings.TrimSuffix(name, "-api"), true
	case strings.HasSuffix(name, "-origin"):
		return strings.TrimSuffix(name, "-origin"), true
	}
	return RoleGlobal, false
}

// frontDoorClient is how the front door reaches the APIs: mutual TLS with
// the global role's certificate; nil (the front door's default) with TLS
// off.
func (t *Topology) frontDoorClient() *http.Client {
	src := t.tls[RoleGlobal]
	if src == nil {
		return nil
	}
	tr := src.Transport(false)
	tr.MaxIdleConns = 256
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// edgeTransport is how the edge reaches its origins: the global role's
// certificate towards the project's origin, and the system's CAs also
// accepted for origins outside the project; nil (the edge's default)
// with TLS off.
func (t *Topology) edgeTransport() http.RoundTripper {
	src := t.tls[RoleGlobal]
	if src == nil {
		return nil
	}
	tr := src.Transport(true)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	tr.DisableCompression = true
	tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout = edge.DefaultOriginTimeout, edge.DefaultOriginTimeout
	return tr
}

// caFile is the CA bundle peers' certificates must chain to.
func caFile(cfg *config.Config) string {
	if cfg.TLS.CA != "" {
		return cfg.TLS.CA
	}
	return filepath.Join(cfg.TLS.Dir, certs.CACert)
}
