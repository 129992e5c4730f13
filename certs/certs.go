// Package certs makes and serves the project's TLS material: a CA, and one
// certificate per role (each cloud, and "global" for the front door, edge
// and log store), each usable as server and as client certificate, so
// that every hop between the parts is mutual TLS.
//
// Keys are ECDSA P-256. The CA lives CALifetime (10 years), a role's
// certificate LeafLifetime (1 year); its subject alternative names are
// the hosts its listeners use plus localhost, 127.0.0.1 and ::1. Files
// (in one directory, keys 0600):
//
//	ca.crt, ca.key        the CA; ca.crt may hold several CAs (a rotation)
//	ROLE.crt, ROLE.key    a role's certificate and key
//
// A Source serves the files as tls.Configs that re-read them when they
// change, so `intercloud certs rotate` replaces certificates without a
// restart: new handshakes use the new files.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Lifetimes of what Init and Rotate make.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 365 * 24 * time.Hour
)

// File names in a certificate directory.
const (
	CACert = "ca.crt"
	CAKey  = "ca.key"
)

// CertFile and KeyFile name a role's files in dir.
func CertFile(dir, role string) string { return filepath.Join(dir, role+".crt") }

// KeyFile names a role's key file in dir.
func KeyFile(dir, role string) string { return filepath.Join(dir, role+".key") }

// Made reports what Init or Rotate wrote.
type Made struct {
	CA    bool
	Roles []string
}

// Init makes what is missing in dir: the CA, and a certificate for each
// role of hosts (role → host names or IPs its listeners use). Existing
// files are kept.
func Init(dir string, hosts map[string][]string, now time.Time) (Made, error) {
	var made Made
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return made, fmt.Errorf("certs: %w", err)
	}
	var missing []string
	for _, role := range sortedKeys(hosts) {
		if _, err := os.Stat(CertFile(dir, role)); err == nil {
			if _, err := os.Stat(KeyFile(dir, role)); err == nil {
				continue
			}
		}
		missing = append(missing, role)
	}
	if len(missing) == 0 {
		return made, nil
	}
	ca, caKey, err := loadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(dir, CACert)); serr == nil {
			return made, fmt.Errorf("certs: %s has no certificate for %v and the CA key is not here: make them where %s is (intercloud certs init) and copy them", dir, missing, CAKey)
		}
		if ca, caKey, err = newCA(dir, now, false); err != nil {
			return made, err
		}
		made.CA = true
	} else if err != nil {
		return made, err
	}
	for _, role := range missing {
		if err := newLeaf(dir, role, hosts[role], ca, caKey, now); err != nil {
			return made, err
		}
		made.Roles = append(made.Roles, role)
	}
	return made, nil
}

// Rotate replaces every role's certificate and key with new ones. With
// newCA, it first makes a new CA and adds it to ca.crt next to the old
// one, so that peers trust both while their certificates are replaced;
// `Prune` later drops the old CAs.
func Rotate(dir string, hosts map[string][]string, newCAToo bool, now time.Time) (Made, error) {
	var made Made
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return made, fmt.Errorf("certs: rotate: %w (run certs init first)", err)
	}
	if newCAToo {
		if ca, caKey, err = newCA(dir, now, true); err != nil {
			return made, err
		}
		made.CA = true
	}
	for _, role := range sortedKeys(hosts) {
		if err := newLeaf(dir, role, hosts[role], ca, caKey, now); err != nil {
			return made, err
		}
		made.Roles = append(made.Roles, role)
	}
	return made, nil
}

// Prune keeps only the newest CA in ca.crt (after a rotation with a new
// CA, once every certificate in use is signed by it).
func Prune(dir string) error {
	cas, err := readCerts(filepath.Join(dir, CACert))
	if err != nil {
		return err
	}
	if len(cas) <= 1 {
		return nil
	}
	return writeFile(filepath.Join(dir, CACert), pemCert(cas[len(cas)-1].Raw), 0o600)
}

func sortedKeys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// newCA makes a CA; with appendCA it is added to ca.crt, else ca.crt is
// written anew.
func newCA(dir string, now time.Time, appendCA bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "intercloud CA " + now.UTC().Format("2006-01-02T15:04:05Z"), Organization: []string{"intercloud"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: ca: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: ca: %w", err)
	}
	certPEM := pemCert(der)
	if appendCA {
		old, err := os.ReadFile(filepath.Join(dir, CACert))
		if err != nil {
			return nil, nil, fmt.Errorf("certs: %w", err)
		}
		certPEM = append(append(bytes.TrimSpace(old), '\n'), certPEM...)
	}
	// The key first: a ca.crt without its key is never left behind.
	if err := writeFile(filepath.Join(dir, CAKey), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(dir, CACert), certPEM, 0o600); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// loadCA reads the newest CA of dir and its key.
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	kb, err := os.ReadFile(filepath.Join(dir, CAKey))
	if err != nil {
		return nil, nil, err
	}
	cas, err := readCerts(filepath.Join(dir, CACert))
	if err != nil {
		return nil, nil, err
	}
	if len(cas) == 0 {
		return nil, nil, fmt.Errorf("certs: %s holds no certificate", filepath.Join(dir, CACert))
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		return nil, nil, fmt.Errorf("certs: %s is not PEM", filepath.Join(dir, CAKey))
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, CAKey), err)
	}
	return cas[len(cas)-1], key, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", path, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// newLeaf makes a role's certificate: server and client auth, SANs for
// hosts and the loopback names.
func newLeaf(dir, role string, hosts []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: role, Organization: []string{"intercloud"}, OrganizationalUnit: []string{role}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(LeafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	addSAN(tmpl, "localhost")
	addSAN(tmpl, "127.0.0.1")
	addSAN(tmpl, "::1")
	for _, h := range hosts {
		if h == "" || h == "0.0.0.0" || h == "::" {
			if name, err := os.Hostname(); err == nil {
				addSAN(tmpl, name)
			}
			continue
		}
		addSAN(tmpl, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", role, err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", role, err)
	}
	// Each file is replaced atomically; the key first, so that a reader
	// that sees a new certificate with the old key retries (the pair is
	// checked when loaded).
	if err := writeFile(KeyFile(dir, role), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeFile(CertFile(dir, role), append(pemCert(der), pemCert(ca.Raw)...), 0o600)
}

func addSAN(c *x509.Certificate, h string) {
	if ip := net.ParseIP(h); ip != nil {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			c.IPAddresses = append(c.IPAddresses, ip)
		}
		return
	}
	if !slices.Contains(c.DNSNames, h) {
		c.DNSNames = append(c.DNSNames, h)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFile replaces path atomically with b.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %w", err)
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// Source serves a certificate, its key and the CA bundle peers must chain
// to, re-reading the files (at most once a second) when they change.
type Source struct {
	cert, key, ca string

	mu      sync.Mutex
	checked time.Time
	stamp   string
	pair    *tls.Certificate
	pool    *x509.CertPool
	err     error
}

// NewSource returns a Source of the PEM files; it reads them once to
// check them.
func NewSource(certFile, keyFile, caFile string) (*Source, error) {
	s := &Source{cert: certFile, key: keyFile, ca: caFile}
	if _, _, err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// RoleSource is the Source of a role's files in dir.
func RoleSource(dir, role string) (*Source, error) {
	return NewSource(CertFile(dir, role), KeyFile(dir, role), filepath.Join(dir, CACert))
}

func stampOf(paths ...string) string {
	var b bytes.Buffer
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

// load returns the current pair and pool, re-reading changed files.
func (s *Source) load(force bool) (*tls.Certificate, *x509.CertPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && s.pair != nil && time.Since(s.checked) < time.Second {
		return s.pair, s.pool, nil
	}
	s.checked = time.Now()
	stamp := stampOf(s.cert, s.key, s.ca)
	if !force && s.pair != nil && stamp == s.stamp {
		return s.pair, s.pool, nil
	}
	pair, err := tls.LoadX509KeyPair(s.cert, s.key)
	if err != nil {
		err = fmt.Errorf("certs: %s: %w", s.cert, err)
	}
	var pool *x509.CertPool
	if err == nil {
		var cas []byte
		if cas, err = os.ReadFile(s.ca); err == nil {
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(cas) {
				err = fmt.Errorf("certs: %s holds no certificate", s.ca)
			}
		} else {
			err = fmt.Errorf("certs: %w", err)
		}
	}
	if err != nil {
		// Mid-rotation (a key without its certificate yet): keep serving
		// what worked, try again at the next check.
		if s.pair != nil {
			return s.pair, s.pool, nil
		}
		return nil, nil, err
	}
	s.pair, s.pool, s.stamp, s.err = &pair, pool, stamp, nil
	return s.pair, s.pool, nil
}

// ServerConfig returns a server's tls.Config (TLS 1.2 at least). With
// requireClient, a client without a certificate from the CA is refused at
// the handshake; without, a client certificate is verified if given.
func (s *Source) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClient {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pair, pool, err := s.load(false)
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*pair},
				ClientCAs:    pool,
				ClientAuth:   auth,
				NextProtos:   []string{"h2", "http/1.1"},
			}, nil
		},
	}
}

// ClientConfig returns a client's tls.Config for a server at host (a
// name or an IP, as dialled): it presents the certificate and verifies
// the server's against the CA bundle as it is at each handshake, and its
// name or IP against host. With systemRoots, a server certificate from a
// CA the system trusts is accepted too (for origins outside the project).
func (s *Source) ClientConfig(host string, systemRoots bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		NextProtos: []string{"h2", "http/1.1"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, _, err := s.load(false)
			if err != nil {
				return nil, err
			}
			return pair, nil
		},
		// The chain is verified below against the CA bundle of the
		// moment, which a fixed RootCAs could not follow.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool, err := s.load(false)
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("certs: the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			opts := x509.VerifyOptions{
				Roots: pool, Intermediates: inter, DNSName: host,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}
			_, err = cs.PeerCertificates[0].Verify(opts)
			if err != nil && systemRoots {
				opts.Roots = nil // the system's
				_, err = cs.PeerCertificates[0].Verify(opts)
			}
			if err != nil {
				return fmt.Errorf("certs: server certificate of %s: %w", host, err)
			}
			return nil
		},
	}
}

// Transport returns an HTTP transport whose TLS connections use
// ClientConfig for the host dialled (HTTP/2 when the server offers it).
func (s *Source) Transport(systemRoots bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, s.ClientConfig(host, systemRoots))
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	}
	return t
}
