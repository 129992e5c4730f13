package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var hosts = map[string][]string{"aws": {"127.0.0.1", "aws.example"}, "azure": {"::1"}, "global": {"0.0.0.0"}}

// serve starts an HTTPS server with a role's certificate.
func serve(t *testing.T, dir, role string, requireClient bool) *httptest.Server {
	t.Helper()
	src, err := RoleSource(dir, role)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.TLS = src.ServerConfig(requireClient)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, dir, role string) *http.Client {
	t.Helper()
	src, err := RoleSource(dir, role)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: src.Transport(false), Timeout: 10 * time.Second}
}

func TestInitMakesWhatIsMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	made, err := Init(dir, hosts, time.Now())
	if err != nil || !made.CA || len(made.Roles) != 3 {
		t.Fatalf("Init = %+v, %v", made, err)
	}
	for _, f := range []string{CACert, CAKey, "aws.crt", "aws.key", "azure.crt", "azure.key", "global.crt", "global.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode().Perm(), err)
		}
	}
	again, err := Init(dir, hosts, time.Now())
	if err != nil || again.CA || len(again.Roles) != 0 {
		t.Fatalf("a second Init made %+v, %v", again, err)
	}
	pair, err := tls.LoadX509KeyPair(CertFile(dir, "aws"), KeyFile(dir, "aws"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.PublicKeyAlgorithm != x509.ECDSA || !strings.Contains(strings.Join(leaf.DNSNames, ","), "aws.example") || len(leaf.IPAddresses) < 2 {
		t.Errorf("aws certificate: %v %v %v", leaf.PublicKeyAlgorithm, leaf.DNSNames, leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d < LeafLifetime-2*time.Hour || d > LeafLifetime {
		t.Errorf("leaf lifetime %s", d)
	}
	// Without the CA key, a missing role is an error, never a new CA.
	if err := os.Remove(filepath.Join(dir, CAKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, map[string][]string{"gcp": nil}, time.Now()); err == nil || !strings.Contains(err.Error(), "CA key") {
		t.Fatalf("Init without the CA key: %v", err)
	}
}

// Mutual TLS: a client with a certificate of the CA gets through (HTTP/2);
// one without a certificate, or with one of another CA, is refused at the
// handshake; a client that does not trust the CA refuses the server.
func TestMutualTLSRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := Init(other, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dir, "aws", true)
	resp, err := client(t, dir, "global").Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0", b)
	}
	// No client certificate.
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, CACert))
	pool.AppendCertsFromPEM(ca)
	if _, err := tlsDial(srv, &tls.Config{RootCAs: pool}); err == nil {
		t.Error("a client without a certificate was let in")
	}
	// A certificate of another CA.
	if _, err := client(t, other, "global").Get(srv.URL); err == nil {
		t.Error("a client of another CA was let in")
	}
	// A server of another CA, seen by a client of ours.
	foreign := serve(t, other, "aws", false)
	if _, err := client(t, dir, "global").Get(foreign.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server of another CA was trusted: %v", err)
	}
	// Without requireClient, a client without a certificate is served.
	open := serve(t, dir, "global", false)
	c, err := tlsDial(open, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("a client without a certificate on an open listener: %v", err)
	}
	c.Close()
}

func tlsDial(srv *httptest.Server, cfg *tls.Config) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate on the first read.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Rotation replaces certificates under a running server and client: new
// handshakes use the new ones without a restart; with a new CA, old and
// new certificates are trusted side by side until Prune.
func TestRotateWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dir, "aws", true)
	c := client(t, dir, "global")
	serialOf := func() string {
		t.Helper()
		tr := c.Transport.(*http.Transport)
		tr.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serialOf()
	if _, err := Rotate(dir, hosts, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for serialOf() == before {
		if time.Now().After(deadline) {
			t.Fatal("the server still serves the old certificate")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cas, err := readCerts(filepath.Join(dir, CACert))
	if err != nil || len(cas) != 2 {
		t.Fatalf("ca.crt holds %d CAs after a rotation with a new CA (%v)", len(cas), err)
	}
	if err := Prune(dir); err != nil {
		t.Fatal(err)
	}
	if cas, _ := readCerts(filepath.Join(dir, CACert)); len(cas) != 1 {
		t.Fatalf("after Prune: %d CAs", len(cas))
	}
	time.Sleep(1100 * time.Millisecond) // the sources re-read at most once a second
	serialOf()
}
