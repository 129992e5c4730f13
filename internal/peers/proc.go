package peers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/internal/cputime"
)

// Timeouts shared by every server.
const (
	readyTimeout = 90 * time.Second // a server must answer within this (generous: CI machines are busy)
	stopTimeout  = 20 * time.Second // SIGKILL after this long without exit
	pollEvery    = 50 * time.Millisecond
)

// procSpec says how to run one server process.
type procSpec struct {
	name    string   // short name for errors and the pid file
	path    string   // absolute path of the executable
	args    []string // arguments after the executable
	env     []string // environment; nil means os.Environ()
	dir     string   // working directory and where the pid file goes
	logPath string   // stdout and stderr are appended here
	cred    *syscall.Credential
}

// proc is one running server process, detached in its own session.
type proc struct {
	name    string
	pid     int
	logPath string
	done    chan struct{}
	waitErr error
}

// startProc starts the process in a new session (its own process group)
// with a parent-death signal, so it cannot outlive the test process, and
// records its PID in dir/NAME.pid.
func startProc(s procSpec) (*proc, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("peers: %s: open log: %w", s.name, err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.cred,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("peers: %s: start %s: %w", s.name, s.path, err)
	}
	p := &proc{name: s.name, pid: cmd.Process.Pid, logPath: s.logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if s.dir != "" {
		_ = os.WriteFile(filepath.Join(s.dir, s.name+".pid"), []byte(strconv.Itoa(p.pid)+"\n"), 0o644)
	}
	return p, nil
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the process's whole group (its session).
func (p *proc) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// stop sends sig to the process group, waits until the process is gone,
// sends SIGKILL after timeout, and finally kills whatever is left of the
// group. It is safe to call more than once.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	if !p.exited() {
		if err := p.signalGroup(sig); err != nil {
			return fmt.Errorf("peers: %s: signal %d: %w", p.name, p.pid, err)
		}
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = p.signalGroup(syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(stopTimeout):
				return fmt.Errorf("peers: %s: pid %d survives SIGKILL", p.name, p.pid)
			}
		}
	}
	// Children left in the group: kill them and wait until they are gone.
	deadline := time.Now().Add(stopTimeout)
	for syscall.Kill(-p.pid, 0) == nil {
		_ = p.signalGroup(syscall.SIGKILL)
		if time.Now().After(deadline) {
			return fmt.Errorf("peers: %s: process group %d survives SIGKILL", p.name, p.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// cpu returns the CPU time of the process and every process below it
// (cputime.Tree), and fails t when p is nil (a stopped server), has
// exited, or its figures cannot be read.
func (p *proc) cpu(t testing.TB) time.Duration {
	t.Helper()
	if p == nil || p.exited() {
		t.Fatal("peers: CPU time of a server that is not running")
	}
	d, err := cputime.Tree(p.pid)
	if err != nil {
		t.Fatalf("peers: %s: %v", p.name, err)
	}
	return d
}

// exitError describes how the process ended, with the tail of its log.
func (p *proc) exitError() error {
	return fmt.Errorf("peers: %s: exited early (%v)\n%s", p.name, p.waitErr, logTail(p.logPath))
}

// waitReady polls check until it succeeds, the process exits, or timeout
// passes; failures carry the tail of the server's log.
func waitReady(p *proc, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return p.exitError()
		}
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("peers: %s: not ready after %s: %v\n%s", p.name, timeout, err, logTail(p.logPath))
		}
		time.Sleep(pollEvery)
	}
}

// logTail returns the last lines of a log file, formatted for an error.
func logTail(path string) string {
	const maxBytes, maxLines = 4096, 25
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		_, _ = f.Seek(st.Size()-maxBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "--- tail of " + path + " ---\n" + strings.Join(lines, "\n")
}
