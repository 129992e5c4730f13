package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// genSize is the size of the generated big object.
const genSize = 1 << 30

// genBlock is the repeating content of a generated object; byte i of the
// object is genBlock[i%len] ^ byte(i/len), so every block differs.
var genBlock = func() []byte {
	b := make([]byte, 64<<10)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

func genByte(off int64) byte {
	return genBlock[off%int64(len(genBlock))] ^ byte(off/int64(len(genBlock)))
}

// genReader is an io.ReadSeeker over a generated object that records when
// its last byte has been read (produced by the origin).
type genReader struct {
	off, size int64
	finished  *atomic.Bool
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.size-g.off))
	for i := range n {
		p[i] = genByte(g.off + int64(i))
	}
	g.off += int64(n)
	if g.off == g.size {
		g.finished.Store(true)
	}
	return n, nil
}

func (g *genReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		g.off = off
	case io.SeekCurrent:
		g.off += off
	case io.SeekEnd:
		g.off = g.size + off
	}
	return g.off, nil
}

// checkGen reads r and checks it is bytes [off, off+n) of a generated
// object.
func checkGen(r io.Reader, off, n int64) error {
	buf := make([]byte, 256<<10)
	var got int64
	for {
		k, err := r.Read(buf)
		for i := range k {
			if buf[i] != genByte(off+got+int64(i)) {
				return fmt.Errorf("byte %d differs", off+got+int64(i))
			}
		}
		got += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	if got != n {
		return fmt.Errorf("got %d bytes, want %d", got, n)
	}
	return nil
}

// TestEdgeChildProcess is the edge process of TestBigObject: it runs only
// when that test starts it.
func TestEdgeChildProcess(t *testing.T) {
	origin := os.Getenv("EDGE_TEST_CHILD_ORIGIN")
	if origin == "" {
		t.Skip("started by TestBigObject")
	}
	e, err := New(Config{Routes: []Route{{Prefix: "/", Origins: []string{origin}}},
		DiskDir: os.Getenv("EDGE_TEST_CHILD_DIR"), DiskBytes: 2 * genSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	go func() { _ = http.Serve(ln, e) }()
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// TestBigObject sends a 1 GiB object through an edge running in its own
// process (with a disk tier): the first bytes reach the client before the
// origin has produced the last, the body arrives intact and is stored,
// a Range is then served from the stored copy, a Range miss on another
// 1 GiB object is forwarded, and the edge's peak RSS stays under 100 MB.
func TestBigObject(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 3 GiB")
	}
	var finished [2]atomic.Bool
	osrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if r.URL.Path == "/big2" {
			i = 1
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"gen"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, &genReader{size: genSize, finished: &finished[i]})
	}))
	defer osrv.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestEdgeChildProcess$")
	cmd.Env = append(os.Environ(), "EDGE_TEST_CHILD_ORIGIN="+osrv.URL, "EDGE_TEST_CHILD_DIR="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the edge process did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	base := "http://" + addr
	idle, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}

	// The miss streams.
	resp, err := http.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if finished[0].Load() {
		t.Fatal("the first byte arrived only after the origin had produced the whole object")
	}
	if first[0] != genByte(0) {
		t.Fatal("first byte differs")
	}
	if err := checkGen(resp.Body, 1, genSize-1); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != Miss {
		t.Fatalf("X-Cache %q", resp.Header.Get("X-Cache"))
	}

	// A range of the stored copy.
	get := func(path, rng string) *http.Response {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var resp2 *http.Response
	waitFor(t, "the object to be stored", func() bool {
		resp2 = get("/big", "bytes=1000000000-1000999999")
		if resp2.Header.Get("X-Cache") == Hit {
			return true
		}
		resp2.Body.Close()
		return false
	})
	if resp2.StatusCode != 206 {
		t.Fatalf("range from the cache: %d", resp2.StatusCode)
	}
	if err := checkGen(resp2.Body, 1000000000, 1000000); err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()

	// A range miss is forwarded: the edge never pulls the whole object.
	resp3 := get("/big2", "bytes=-1000")
	if resp3.StatusCode != 206 || resp3.Header.Get("X-Cache") != Pass {
		t.Fatalf("range miss: %d %s", resp3.StatusCode, resp3.Header.Get("X-Cache"))
	}
	if err := checkGen(resp3.Body, genSize-1000, 1000); err != nil {
		t.Fatal(err)
	}
	resp3.Body.Close()

	// A whole hit from the disk tier.
	resp4, err := http.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkGen(resp4.Body, 0, genSize); err != nil {
		t.Fatal(err)
	}
	resp4.Body.Close()

	hwm, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("edge process peak RSS %.1f MB after 3 GiB through it (%.1f MB before)", float64(hwm)/1e6, float64(idle)/1e6)
	if hwm >= 100e6 {
		t.Fatalf("edge peak RSS %d bytes, want < 100 MB", hwm)
	}
	if !bytes.Equal(first, []byte{genByte(0)}) {
		t.Fatal("unreachable")
	}
}
