// Command image assembles intercloud's container image without a Docker
// daemon: the final stage of deploy/Dockerfile (its USER, WORKDIR, EXPOSE,
// ENTRYPOINT and CMD) on a distroless-like base made here (an empty image
// with /etc/passwd and /etc/group naming the nonroot user 65532, the CA
// certificates, /tmp and the user's home), plus a layer with the
// statically built binary and the data directory. It writes a tarball
// that `docker load` and `podman load` read (and crane pushes).
//
//	CGO_ENABLED=0 go build -trimpath -o dist/intercloud ./cmd/intercloud
//	go run ./deploy/image -binary dist/intercloud -o dist/intercloud-image.tar
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	o := Options{}
	out := fs.String("o", "dist/intercloud-image.tar", "the image tarball to write")
	tag := fs.String("tag", "intercloud:dev", "the image's name in the tarball")
	fs.StringVar(&o.Binary, "binary", "dist/intercloud", "the statically built intercloud binary (linux)")
	fs.StringVar(&o.Dockerfile, "dockerfile", "deploy/Dockerfile", "the Dockerfile whose final stage the image follows")
	fs.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA certificate bundle to put in the image")
	fs.StringVar(&o.Arch, "arch", runtime.GOARCH, "the binary's architecture")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", *tag, err)
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	d, _ := img.Digest()
	fmt.Printf("%s %s %s\n", *out, ref, d)
	return nil
}

// Options say what the image is made of.
type Options struct {
	Binary, Dockerfile, CACerts, Arch string
}

// Stage is what the final stage of a Dockerfile says about the image.
type Stage struct {
	From       string
	User       string // "uid:gid"
	WorkDir    string
	Expose     []string // "8080/tcp"
	Entrypoint []string
	Cmd        []string
	// Binary is where COPY puts the binary (the ENTRYPOINT's program).
	Binary string
	// Owned are the directories COPY --chown gives to User.
	Owned []string
}

// ParseStage reads the final stage of a Dockerfile: the instructions after
// its last FROM, one per line (continuations joined), the exec (JSON) form
// for ENTRYPOINT and CMD.
func ParseStage(dockerfile []byte) (Stage, error) {
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return Stage{}, err
	}
	last := -1
	for i, l := range lines {
		if strings.EqualFold(firstWord(l), "FROM") {
			last = i
		}
	}
	if last < 0 {
		return Stage{}, errors.New("dockerfile: no FROM")
	}
	var s Stage
	for _, l := range lines[last:] {
		op, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		var err error
		switch strings.ToUpper(op) {
		case "FROM":
			s.From = strings.Fields(rest)[0]
		case "USER":
			s.User = rest
		case "WORKDIR":
			s.WorkDir = rest
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				s.Expose = append(s.Expose, p)
			}
		case "ENTRYPOINT":
			err = json.Unmarshal([]byte(rest), &s.Entrypoint)
		case "CMD":
			err = json.Unmarshal([]byte(rest), &s.Cmd)
		case "COPY":
			f := strings.Fields(rest)
			chown := false
			var args []string
			for _, a := range f {
				switch {
				case strings.HasPrefix(a, "--chown="):
					chown = true
				case strings.HasPrefix(a, "--"):
				default:
					args = append(args, a)
				}
			}
			if len(args) == 2 && chown {
				s.Owned = append(s.Owned, args[1])
			} else if len(args) == 2 && path.Base(args[0]) == "intercloud" {
				s.Binary = args[1]
			}
		}
		if err != nil {
			return Stage{}, fmt.Errorf("dockerfile: %s: want the exec form [\"...\"]: %w", op, err)
		}
	}
	switch {
	case len(s.Entrypoint) == 0:
		return Stage{}, errors.New("dockerfile: the final stage has no ENTRYPOINT")
	case s.Binary == "" || s.Entrypoint[0] != s.Binary:
		return Stage{}, fmt.Errorf("dockerfile: ENTRYPOINT %v does not run the binary COPY puts at %q", s.Entrypoint, s.Binary)
	case s.User == "":
		return Stage{}, errors.New("dockerfile: the final stage has no USER")
	}
	return s, nil
}

func firstWord(l string) string { w, _, _ := strings.Cut(l, " "); return w }

// nonroot is the user distroless images name 65532.
const nonroot = 65532

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	df, err := os.ReadFile(o.Dockerfile)
	if err != nil {
		return nil, err
	}
	st, err := ParseStage(df)
	if err != nil {
		return nil, err
	}
	uid, gid, err := ids(st.User)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s is not a linux (ELF) binary", o.Binary)
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	base, err := layer([]file{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, uid: nonroot, gid: nonroot},
		{name: "root/", dir: true, mode: 0o700},
		{name: "tmp/", dir: true, mode: 0o1777},
	})
	if err != nil {
		return nil, err
	}
	app := []file{{name: strings.TrimPrefix(st.Binary, "/"), mode: 0o755, data: bin}}
	dirs := map[string]bool{}
	for _, d := range append(st.Owned, st.WorkDir) {
		d = strings.Trim(d, "/")
		if d == "" {
			continue
		}
		parts := strings.Split(d, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/") + "/"
			if dirs[p] {
				continue
			}
			dirs[p] = true
			f := file{name: p, dir: true, mode: 0o755}
			if i == len(parts)-1 {
				f.uid, f.gid = uid, gid
			}
			app = append(app, f)
		}
	}
	appLayer, err := layer(app)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, base, appLayer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = st.User
	cf.Config.WorkingDir = st.WorkDir
	cf.Config.Entrypoint = st.Entrypoint
	cf.Config.Cmd = st.Cmd
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range st.Expose {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "intercloud", "org.opencontainers.image.base.name": "scratch (distroless-like, deploy/image)"}
	return mutate.ConfigFile(img, cf)
}

// epoch is every file's and the image's time, so that the same inputs
// give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// ids parses "uid:gid" (numeric, as a scratch image has no name lookup).
func ids(user string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(user, ":")
	if !ok {
		g = u
	}
	if uid, err = strconv.Atoi(u); err == nil {
		gid, err = strconv.Atoi(g)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("dockerfile: USER %q: want numeric uid:gid", user)
	}
	return uid, gid, nil
}

// file is one entry of a layer.
type file struct {
	name     string
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// layer makes an uncompressed tar of files into a layer (gzipped by the
// library when written).
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
