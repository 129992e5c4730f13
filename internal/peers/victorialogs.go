package peers

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// VictoriaLogs is a running VictoriaLogs server. It takes Elasticsearch
// bulk requests at URL+"/insert/elasticsearch/_bulk" and answers LogsQL
// queries at URL+"/select/logsql/query".
type VictoriaLogs struct {
	URL string // http://127.0.0.1:PORT
}

// StartVictoriaLogs starts VictoriaLogs with its storage in a fresh
// temporary directory on a free loopback port, and stops it when the test
// ends.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	if err := Install(t.Context(), "victorialogs"); err != nil {
		unavailable(t, "peers: victorialogs: %v", err)
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	p, err := startProc(procSpec{
		name: "victoria-logs",
		path: filepath.Join(binDir(), "victoria-logs"),
		args: []string{
			"-httpListenAddr=" + addr,
			"-storageDataPath=" + filepath.Join(dir, "data"),
			"-loggerLevel=WARN",
		},
		env:     []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir},
		dir:     dir,
		logPath: filepath.Join(dir, "victoria-logs.log"),
	})
	if err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		if err := p.stop(syscall.SIGTERM, stopTimeout); err != nil {
			t.Errorf("%v", err)
		}
	})
	v := &VictoriaLogs{URL: "http://" + addr}
	client := &http.Client{Timeout: 2 * time.Second}
	if err := waitReady(p, readyTimeout, func() error {
		resp, err := client.Get(v.URL + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	}); err != nil {
		unavailable(t, "%v", err)
	}
	return v
}
