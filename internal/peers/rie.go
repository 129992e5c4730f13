package peers

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RIE is a running AWS Lambda Runtime Interface Emulator serving one
// function handler.
type RIE struct {
	// InvokeURL is where to POST an event:
	// http://127.0.0.1:PORT/2015-03-31/functions/function/invocations
	InvokeURL string
}

// StartLambdaRIE starts aws-lambda-rie with both of its addresses on free
// loopback ports, running the handler binary at handlerPath (built with
// aws-lambda-go's lambda.Start and `CGO_ENABLED=0 go build -tags
// lambda.norpc`). The emulator and the handler get PATH, HOME and TMPDIR
// plus env ("KEY=value" entries, which win over those). The emulator is
// stopped when the test ends.
func StartLambdaRIE(t testing.TB, handlerPath string, env []string) *RIE {
	t.Helper()
	handler, err := filepath.Abs(handlerPath)
	if err == nil {
		_, err = os.Stat(handler)
	}
	if err != nil {
		t.Fatalf("peers: rie: handler: %v", err)
	}
	if err := Install(t.Context(), "rie"); err != nil {
		unavailable(t, "peers: rie: %v", err)
	}
	dir := t.TempDir()
	invokeAddr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	apiAddr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	for apiAddr == invokeAddr {
		apiAddr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	p, err := startProc(procSpec{
		name: "aws-lambda-rie",
		path: filepath.Join(binDir(), "aws-lambda-rie"),
		args: []string{
			"--runtime-interface-emulator-address", invokeAddr,
			"--runtime-api-address", apiAddr,
			handler,
		},
		env:     append(base, env...),
		dir:     dir,
		logPath: filepath.Join(dir, "rie.log"),
	})
	if err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		if err := p.stop(syscall.SIGTERM, stopTimeout); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := waitReady(p, readyTimeout, func() error { return dialOK(invokeAddr) }); err != nil {
		unavailable(t, "%v", err)
	}
	return &RIE{InvokeURL: fmt.Sprintf("http://%s/2015-03-31/functions/function/invocations", invokeAddr)}
}

// dialOK reports whether a TCP connection to addr succeeds.
func dialOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
