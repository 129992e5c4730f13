package cputime

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// roleEnv names the part a child run of this test binary plays (see
// TestMain); burnFor is the CPU time each such process spends.
const (
	roleEnv = "CPUTIME_TEST_ROLE"
	burnFor = 150 * time.Millisecond
)

func TestMain(m *testing.M) {
	role := os.Getenv(roleEnv)
	if role == "" {
		os.Exit(m.Run())
	}
	if err := play(role); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// play is a child's part: "burn" spends burnFor and exits; "hold" spends
// burnFor, says "ready" and waits for its stdin to close; "tree" runs a
// "burn" child to its end (and waits for it), starts a "hold" child,
// spends burnFor itself, says "ready", and once its stdin closes, lets
// the "hold" child end and waits for it.
func play(role string) error {
	switch role {
	case "burn":
		return burn(burnFor)
	case "hold":
		if err := burn(burnFor); err != nil {
			return err
		}
		fmt.Println("ready")
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	case "tree":
		if err := child("burn").Run(); err != nil {
			return fmt.Errorf("burn child: %w", err)
		}
		hold, in, err := startHold(child("hold"))
		if err != nil {
			return err
		}
		if err := burn(burnFor); err != nil {
			return err
		}
		fmt.Println("ready")
		if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
			return err
		}
		in.Close()
		return hold.Wait()
	}
	return fmt.Errorf("unknown role")
}

// child is this test binary run in role.
func child(role string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	return cmd
}

// startHold starts cmd and waits until it says "ready"; closing the
// writer it returns lets cmd end.
func startHold(cmd *exec.Cmd) (*exec.Cmd, io.Closer, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		in.Close()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("child said %q (%v), want ready", line, err)
	}
	return cmd, in, nil
}

// TestTree reads the CPU time of a process that spent burnFor itself,
// has a child that spent as much and runs on, and had one that spent as
// much and has exited: it counts all three, and agrees with what the
// kernel reports for the process once it has ended (its own time and its
// children's, from wait4).
func TestTree(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cmd, in, err := startHold(child("tree"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Tree(cmd.Process.Pid)
	in.Close()
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("tree process: %v", werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	// /proc's figures are whole ticks (10 ms), rounded down per process
	// and field.
	const tick = time.Second / clockTicks
	if want := 3*burnFor - 6*tick; got < want {
		t.Errorf("Tree = %v, want at least %v: the process, its running child and its ended child spent %v each", got, want, burnFor)
	}
	kernel := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if got > kernel+2*tick || got < kernel-10*tick {
		t.Errorf("Tree = %v, the kernel's figure for the process and its children when it ended %v", got, kernel)
	}
	if _, err := Tree(cmd.Process.Pid); err == nil {
		t.Errorf("Tree of the ended process %d: no error", cmd.Process.Pid)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		stat      string
		ppid      int
		ticks     int64
		wantError bool
	}{
		{"plain", "4242 (postgres) S 4200 4242 4242 0 -1 4194560 100 200 0 0 11 22 33 44 20 0 1 0 5 6 7", 4200, 110, false},
		{"command with spaces and parentheses", "77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0", 1, 10, false},
		{"no command", "77 R 1 77", 0, 0, true},
		{"short", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 1 2", 0, 0, true},
		{"not a number", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 1 two 3 4", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ppid, ticks, err := parseStat([]byte(tt.stat))
			if (err != nil) != tt.wantError || ppid != tt.ppid || ticks != tt.ticks {
				t.Errorf("parseStat = %d, %d, %v; want %d, %d, error %v", ppid, ticks, err, tt.ppid, tt.ticks, tt.wantError)
			}
		})
	}
}
