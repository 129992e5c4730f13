package topology_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/intercloud/intercloud/demo"
	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/topology"
)

// TestConsoleInBrowser drives the live page in headless Chromium while
// records flow: it signs in, checks that the numbers shown match the
// APIs' (bracketed by API reads while they move, equal once the flow
// stops), follows one record's journey from ingest on AWS to publish on
// Azure and the edge's purge, checks the page fits a phone, and saves
// screenshots in the test's artifact directory (go test -artifacts keeps
// them).
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	chromium := peers.Chromium(t)
	cfg := testConfig(t, t.TempDir())
	topo := start(t, cfg)
	console := topo.URL("console")

	// Records flow until the numbers are checked, straight into AWS's
	// ingest API: the checks below follow AWS's numbers and a record's
	// journey from AWS. Through the front door, records land on Azure
	// whenever its health checks (every 100 ms here, so timing out after
	// 100 ms) are slower than that on a loaded machine and it fails over:
	// right for the front door, wrong for what this test follows.
	flowCtx, stopFlow := context.WithCancel(context.Background())
	var mu sync.Mutex
	acked := map[string]demo.Record{}
	var flowErr error
	flowFailed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return flowErr
	}
	var flow sync.WaitGroup
	flow.Go(func() {
		for flowCtx.Err() == nil {
			recs, err := demo.Send(flowCtx, topo.URL("aws-api"), testKey, demo.Options{Records: 40, BatchSize: 20, Concurrency: 2, Client: topo.Client()})
			if err != nil {
				if flowCtx.Err() == nil {
					mu.Lock()
					flowErr = err
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			for id, r := range recs {
				acked[id] = r
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	})
	defer func() { stopFlow(); flow.Wait() }()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		// The console serves the project CA's certificate, which this
		// browser does not know.
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.IgnoreCertErrors, chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()
	dir := t.ArtifactDir()
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(bytes.NewReader(buf)); err != nil {
			t.Fatalf("screenshot %s is not a PNG: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Signed out, the page asks for the key; signed in, it goes live.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(console+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SendKeys(chromedp.CSS("#key"), testKey),
		chromedp.Click(chromedp.CSS("#signin-form button")),
		chromedp.WaitVisible(chromedp.CSS("#diagram")),
		waitText("#conn", "live"),
	); err != nil {
		t.Fatal(err)
	}

	apiAcked := func(cloud string) int64 {
		var st topology.CloudStatus
		getJSON(t, topo, topo.URL(cloud+"-api")+"/v1/status", &st)
		return st.Ingest.RecordsAcked
	}
	pageInt := func(sel string) int64 {
		s := pageText(t, ctx, sel)
		n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
		if err != nil {
			t.Fatalf("%s shows %q", sel, s)
		}
		return n
	}
	// While records flow, what the page shows lies between two API reads
	// (the page is at most a second behind: allow one snapshot of lag).
	deadline := time.Now().Add(60 * time.Second)
	for pageInt("#acked-aws") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed an acknowledged record (sending: %v)", flowFailed())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Three readings must each fall between the API's values read before
	// and after it (a loaded machine may delay a snapshot: each reading
	// gets a few tries).
	for i := 0; i < 3; i++ {
		for try := 1; ; try++ {
			before := apiAcked("aws")
			time.Sleep(2500 * time.Millisecond) // a snapshot newer than before
			shown := pageInt("#acked-aws")
			after := apiAcked("aws")
			if shown >= before && shown <= after && before < after {
				break
			}
			if try == 5 {
				t.Fatalf("page shows %d acknowledged on aws; the API said %d then %d (sending: %v)", shown, before, after, flowFailed())
			}
		}
	}
	shot("console-live.png")

	// Once the flow stops, the page and the APIs agree exactly.
	stopFlow()
	flow.Wait()
	if err := flowFailed(); err != nil {
		t.Fatalf("sending records: %v", err)
	}
	mu.Lock()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	total := len(acked)
	mu.Unlock()
	if _, err := demo.Verify(context.Background(), topo, cfg, acked, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	var az topology.CloudStatus
	var gs topology.GlobalStatus
	deadline = time.Now().Add(30 * time.Second)
	for {
		getJSON(t, topo, topo.URL("azure-api")+"/v1/status", &az)
		getJSON(t, topo, console+"/v1/status", &gs)
		// The page rounds the percentage to one decimal its own way
		// (JavaScript rounds 81.25 up, Go's %.1f to even): what it shows
		// must be within half of that decimal of the API's.
		hit := pageText(t, ctx, "#hit-ratio")
		wantHit := 100 * gs.Edge.HitRatio
		shownHit, err := strconv.ParseFloat(strings.TrimSuffix(hit, "%"), 64)
		hitOK := err == nil && math.Abs(shownHit-wantHit) <= 0.05+1e-9
		// The APIs may count a few more than the test saw acknowledged:
		// the answers of requests cut by the end of the flow.
		apiTotal := apiAcked("aws") + az.Ingest.RecordsAcked
		if pageInt("#acked-aws") == apiAcked("aws") && pageInt("#acked-azure") == az.Ingest.RecordsAcked && apiTotal >= int64(total) &&
			pageInt("#published") == az.Publish.Published && hitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page: acked %d+%d published %d hit %s; API: %d acknowledged (the test saw %d), published %d, hit %g%%",
				pageInt("#acked-aws"), pageInt("#acked-azure"), pageInt("#published"), hit, apiTotal, total, az.Publish.Published, wantHit)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// One record's journey, by id: ingest on AWS to publish on Azure and
	// the purge at the edge.
	id := ids[0]
	var hops []map[string]string
	deadline = time.Now().Add(30 * time.Second)
	for {
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS("#journey-q"), id),
			chromedp.Click(chromedp.CSS("#journey-form button")),
			chromedp.Sleep(300*time.Millisecond),
		); err != nil {
			t.Fatal(err)
		}
		var err error
		hops, err = chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll("#journey li.hop")].map(li => ({cloud: li.dataset.cloud, component: li.dataset.component, text: li.textContent}))`))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, h := range hops {
			seen[h["cloud"]+"/"+h["component"]] = true
		}
		if seen["aws/ingest"] && seen["aws/load"] && seen["azure/replicate"] && seen["azure/publish"] && seen["/edge"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journey of %s: %v", id, hops)
		}
	}
	if head := pageText(t, ctx, "#journey-head"); !strings.Contains(head, "in aws and azure") {
		t.Fatalf("journey head %q", head)
	}
	t.Logf("journey of %s: %d hops", id, len(hops))
	shot("console-journey.png")

	// On a phone the page fits the screen's width.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Sleep(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("the page is wider than a phone's screen")
	}
	shot("console-phone.png")
}

// pageText reads an element's text in one script run: the page redraws
// its tables every second, so a node found by one call may be gone by the
// next.
func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitText waits until an element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			s, err := chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))(ctx, t)
			if err != nil {
				return chromedp.Void{}, err
			}
			if strings.Contains(s, want) {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("%s never showed %q (last %q)", sel, want, s)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// getJSON GETs a URL with the test key and decodes its body.
func getJSON(t *testing.T, topo *topology.Topology, url string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := topo.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
