package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const caCerts = "/etc/ssl/certs/ca-certificates.crt"

// TestImage builds cmd/intercloud statically, assembles the image from it
// and deploy/Dockerfile, writes the tarball `docker load` reads, reads it
// back, and checks what a container runtime would use: the config
// (entrypoint, command, non-root user, working directory, ports), the
// files (the binary, /etc/passwd naming the user, CA certificates, the
// data directory owned by the user, /tmp) — and that the binary taken out
// of the image runs. The same inputs give the same digest.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/intercloud")
	}
	if _, err := os.Stat(caCerts); err != nil {
		t.Skipf("no CA bundle here: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "intercloud")
	gotool := os.Getenv("GO")
	if gotool == "" {
		gotool = "go"
	}
	build := exec.Command(gotool, "build", "-trimpath", "-ldflags", "-s -w -X main.version=image-test", "-o", bin, "../../cmd/intercloud")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	opts := Options{Binary: bin, Dockerfile: "../Dockerfile", CACerts: caCerts, Arch: runtime.GOARCH}
	img, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "image.tar")
	ref, _ := name.NewTag("intercloud:test")
	if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(tarPath, &ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if got, err := loaded.Digest(); err != nil || got != want {
		t.Fatalf("digest read back %v (%v), written %v", got, err, want)
	}
	again, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := again.Digest(); d != want {
		t.Fatalf("the same inputs gave digests %v and %v", want, d)
	}

	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	ports := make([]string, 0, len(c.ExposedPorts))
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, chk := range []struct {
		what      string
		got, want any
	}{
		{"os/arch", cf.OS + "/" + cf.Architecture, "linux/" + runtime.GOARCH},
		{"entrypoint", c.Entrypoint, []string{"/intercloud"}},
		{"cmd", c.Cmd, []string{"up", "--config", "/etc/intercloud/topology.yaml"}},
		{"user", c.User, "65532:65532"},
		{"workdir", c.WorkingDir, "/var/lib/intercloud"},
		{"ports", ports, []string{"8080/tcp", "8081/tcp", "8082/tcp", "8083/tcp", "8084/tcp", "8085/tcp"}},
	} {
		if !equal(chk.got, chk.want) {
			t.Errorf("%s = %v, want %v", chk.what, chk.got, chk.want)
		}
	}
	if layers, _ := loaded.Layers(); len(layers) != 2 {
		t.Errorf("%d layers, want 2 (base, app)", len(layers))
	}

	// The flattened file system, as a runtime unpacks it.
	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	tr := tar.NewReader(mutate.Extract(loaded))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")
		files[n] = h
		if h.Typeflag == tar.TypeReg {
			if contents[n], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []struct {
		name string
		mode int64
		uid  int
		dir  bool
	}{
		{"intercloud", 0o755, 0, false},
		{"var/lib/intercloud", 0o755, 65532, true},
		{"home/nonroot", 0o700, 65532, true},
		{"tmp", 0o1777, 0, true},
		{"etc/passwd", 0o644, 0, false},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, false},
	} {
		h := files[f.name]
		switch {
		case h == nil:
			t.Errorf("the image lacks /%s", f.name)
		case h.Mode != f.mode || h.Uid != f.uid || (h.Typeflag == tar.TypeDir) != f.dir:
			t.Errorf("/%s: mode %o uid %d dir %v, want %o, %d, %v", f.name, h.Mode, h.Uid, h.Typeflag == tar.TypeDir, f.mode, f.uid, f.dir)
		}
	}
	if !bytes.Contains(contents["etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd does not name user 65532:\n%s", contents["etc/passwd"])
	}
	host, _ := os.ReadFile(caCerts)
	if !bytes.Equal(contents["etc/ssl/certs/ca-certificates.crt"], host) || !bytes.Contains(host, []byte("BEGIN CERTIFICATE")) {
		t.Error("the CA bundle in the image is not the host's")
	}
	ran := filepath.Join(dir, "from-image")
	if err := os.WriteFile(ran, contents["intercloud"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ran, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "intercloud image-test" {
		t.Fatalf("the image's binary: %q, %v; want \"intercloud image-test\"", out, err)
	}
	t.Logf("image %v: %d files, binary %d bytes, runs: %s", want, len(files), len(contents["intercloud"]), strings.TrimSpace(string(out)))
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case []string:
		y, _ := b.([]string)
		return slices.Equal(x, y)
	}
	return a == b
}

// TestParseStage: what a Dockerfile's final stage must say for the image
// to be assembled, and the mistakes refused.
func TestParseStage(t *testing.T) {
	good := `FROM golang AS build
RUN go build -o /out/intercloud ./cmd/intercloud
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/intercloud /intercloud
COPY --from=build --chown=65532:65532 /out/data /var/lib/intercloud
USER 65532:65532
WORKDIR /var/lib/intercloud
EXPOSE 8080 \
  8081/udp
ENTRYPOINT ["/intercloud"]
CMD ["up"]
`
	st, err := ParseStage([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if st.From != "gcr.io/distroless/static-debian12:nonroot" || st.User != "65532:65532" || st.Binary != "/intercloud" ||
		!slices.Equal(st.Expose, []string{"8080/tcp", "8081/udp"}) || !slices.Equal(st.Owned, []string{"/var/lib/intercloud"}) ||
		!slices.Equal(st.Cmd, []string{"up"}) {
		t.Fatalf("parsed %+v", st)
	}
	for _, tc := range []struct{ name, replace, with, want string }{
		{"shell-form entrypoint", `ENTRYPOINT ["/intercloud"]`, `ENTRYPOINT /intercloud`, "exec form"},
		{"no entrypoint", `ENTRYPOINT ["/intercloud"]`, ``, "no ENTRYPOINT"},
		{"entrypoint runs something else", `ENTRYPOINT ["/intercloud"]`, `ENTRYPOINT ["/bin/sh"]`, "does not run the binary"},
		{"no user", "USER 65532:65532\n", "", "no USER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStage([]byte(strings.Replace(good, tc.replace, tc.with, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	if _, _, err := ids("nonroot"); err == nil {
		t.Fatal("a user name was taken (a scratch image cannot look it up)")
	}
}
