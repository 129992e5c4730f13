package peers

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Azurite is a running Azurite blob service and queue service sharing the
// well-known development account.
type Azurite struct {
	BlobEndpoint     string // http://127.0.0.1:PORT/devstoreaccount1
	QueueEndpoint    string // http://127.0.0.1:PORT/devstoreaccount1
	Account          string // devstoreaccount1
	Key              string // the well-known development key (base64)
	ConnectionString string // for azblob.NewClientFromConnectionString and the like
}

// The development account every Azurite serves.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// ContainerURL returns the objects URL (azblob://) of container on this
// Azurite's blob service with the account's shared key. The container
// must exist, unless "&create=true" is added: then the store creates it.
func (a *Azurite) ContainerURL(container string) string {
	q := url.Values{"service_url": {a.BlobEndpoint}, "storage_account": {a.Account}, "account_key": {a.Key}}
	return "azblob://" + container + "?" + q.Encode()
}

// StartAzurite starts azurite-blob and azurite-queue on free loopback
// ports with their data in a fresh temporary directory, telemetry off and
// the API version check skipped (current SDKs send versions newer than
// Azurite knows), and stops both when the test ends.
func StartAzurite(t testing.TB) *Azurite {
	t.Helper()
	if err := Install(t.Context(), "azurite"); err != nil {
		unavailable(t, "peers: azurite: %v", err)
	}
	dir := t.TempDir()
	blobPort, queuePort := FreePort(t), FreePort(t)
	for queuePort == blobPort {
		queuePort = FreePort(t)
	}
	a := &Azurite{
		BlobEndpoint:  fmt.Sprintf("http://127.0.0.1:%d/%s", blobPort, azuriteAccount),
		QueueEndpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", queuePort, azuriteAccount),
		Account:       azuriteAccount,
		Key:           azuriteKey,
	}
	a.ConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + a.Account +
		";AccountKey=" + a.Key +
		";BlobEndpoint=" + a.BlobEndpoint +
		";QueueEndpoint=" + a.QueueEndpoint + ";"

	var procs []*proc
	for _, s := range []struct {
		svc  string
		port int
		url  string
	}{
		{"blob", blobPort, a.BlobEndpoint},
		{"queue", queuePort, a.QueueEndpoint},
	} {
		loc := filepath.Join(dir, s.svc)
		if err := mkdirs(loc); err != nil {
			t.Fatalf("peers: azurite: %v", err)
		}
		p, err := startProc(procSpec{
			name: "azurite-" + s.svc,
			path: azuriteBin("azurite-" + s.svc),
			args: []string{
				"--" + s.svc + "Host", "127.0.0.1",
				"--" + s.svc + "Port", strconv.Itoa(s.port),
				"--location", loc,
				"--skipApiVersionCheck",
				"--disableTelemetry",
				"--silent",
			},
			env:     []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NODE_ENV=production"},
			dir:     dir,
			logPath: filepath.Join(dir, "azurite-"+s.svc+".log"),
		})
		if err != nil {
			unavailable(t, "%v", err)
		}
		t.Cleanup(func() {
			if err := p.stop(syscall.SIGTERM, stopTimeout); err != nil {
				t.Errorf("%v", err)
			}
		})
		procs = append(procs, p)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for i, u := range []string{a.BlobEndpoint, a.QueueEndpoint} {
		if err := waitReady(procs[i], readyTimeout, func() error {
			// Any HTTP answer (an auth error here) means it serves.
			resp, err := client.Get(u + "?comp=list")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}); err != nil {
			unavailable(t, "%v", err)
		}
	}
	return a
}
