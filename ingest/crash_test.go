package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/internal/syncbuf"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/record"
)

// childDirEnv names the data directory of TestChildAPI.
const childDirEnv = "INTERCLOUD_INGEST_CHILD_DIR"

// TestAckedRecordsSurviveKill runs the API on the file store in a child
// process, kills it with SIGKILL while 8 clients post 100-record requests,
// and counts, in the objects a fresh bucket reads from its directory, every
// record that was acknowledged: none may be missing, and every object must
// read whole (no partial object under any key). What the kill cannot show
// (the page cache survives it) the file store's TestPutOrdersDurably
// covers: the flushes that make a returned write survive a power loss.
func TestAckedRecordsSurviveKill(t *testing.T) {
	if os.Getenv(childDirEnv) != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildAPI$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var url string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("the child printed no URL; its stderr:\n%s", stderr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	const clients, perRequest, killAfter = 8, 100, 40 // requests acknowledged before the kill
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		requests int
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	kill := func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Error(err)
		}
	}
	client := &http.Client{Timeout: time.Minute}
	for c := range clients {
		wg.Go(func() {
			for n := 0; ; n++ {
				req, err := http.NewRequest(http.MethodPost, url+PathRecords, strings.NewReader(recBody(perRequest, fmt.Sprintf("c%d.%d.", c, n))))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", MediaJSON)
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := client.Do(req)
				if err != nil {
					return // the child is gone
				}
				if resp.StatusCode != http.StatusAccepted {
					resp.Body.Close()
					t.Errorf("status %d", resp.StatusCode)
					return
				}
				var body bytes.Buffer
				_, err = body.ReadFrom(resp.Body)
				resp.Body.Close()
				if err != nil {
					return // killed while answering: not acknowledged
				}
				ids, err := answerIDs(body.Bytes())
				if err != nil {
					t.Errorf("202 body %q: %v", body.String(), err)
					return
				}
				if len(ids) != perRequest {
					t.Errorf("%d ids for %d records", len(ids), perRequest)
					return
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				requests++
				if requests == killAfter {
					killOnce.Do(kill)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	killOnce.Do(kill) // in case every client failed first
	_ = cmd.Wait()
	if t.Failed() {
		t.Fatalf("the child's stderr:\n%s", stderr.String())
	}

	b, err := objects.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stored := map[string]bool{}
	objs := 0
	err = b.List(context.Background(), RawPrefix, func(o objects.Object) error {
		data, _, err := b.Get(context.Background(), o.Key)
		if err != nil {
			return err
		}
		objs++
		if len(data) == 0 || data[len(data)-1] != '\n' {
			return fmt.Errorf("%s is cut short", o.Key)
		}
		if err := record.ReadStored(testSchema, data, func(int, record.Record) error { return nil }); err != nil {
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		ids, err := record.StoredIDs(data)
		if err != nil {
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		for _, id := range ids {
			if stored[id] {
				return fmt.Errorf("%s: record %s stored twice", o.Key, id)
			}
			stored[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for id := range acked {
		if !stored[id] {
			missing++
		}
	}
	t.Logf("%d records acknowledged in %d requests before SIGKILL; %d stored in %d objects (%d written but not answered); %d acknowledged missing",
		len(acked), len(acked)/perRequest, len(stored), objs, len(stored)-(len(acked)-missing), missing)
	if len(acked) < killAfter*perRequest {
		t.Errorf("only %d records acknowledged: the kill did not land mid-stream", len(acked))
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged records are not in the store", missing, len(acked))
	}
}

// answerIDs reads the ids of a 202 answer.
func answerIDs(body []byte) ([]string, error) {
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.IDs, nil
}

// TestChildAPI is the child process of TestAckedRecordsSurviveKill: the
// API on a file store, serving until it is killed.
func TestChildAPI(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("run by TestAckedRecordsSurviveKill")
	}
	b, err := objects.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{
		Cloud: "aws", Bucket: b, Schema: testSchema, APIKey: testKey,
		Limits: config.Ingest{MaxRecords: 1000},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	t.Fatal(http.Serve(ln, api)) // until killed
}
