// Package topology builds every intercloud component from the topology
// file and runs them with one lifecycle: start in dependency order, print
// the endpoints, stop gracefully (in-flight requests finish, pending group
// commits are written, acknowledged data is never lost).
//
// A process runs some roles of the topology: a cloud's part ("aws",
// "azure": its object store, database, ingest API, load function, the
// replication stream into it, and publish where configured) and the global
// part ("global": front door, edge, central log store). `intercloud up`
// runs all of them; `intercloud up --cloud aws` one cloud's part.
package topology

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/intercloud/intercloud/auth"
	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
	"github.com/intercloud/intercloud/frontdoor"
	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/hlc"
	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/ingest"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/lease"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/logstore"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/notify"
	"github.com/intercloud/intercloud/origin"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/telemetry"
)

// RoleGlobal is the role of the parts that belong to no cloud.
const RoleGlobal = "global"

// Options tune a running topology.
type Options struct {
	// Roles to run: cloud names and/or RoleGlobal; empty means all.
	Roles []string
	// APIKey is the bearer key of the APIs (see ResolveAPIKey).
	APIKey string
	// LogWriter receives every component's JSON log lines; nil discards.
	LogWriter io.Writer
	// LogLevel is the lowest level logged.
	LogLevel slog.Level
	// LogText writes LogWriter's lines as text a person reads instead of
	// JSON, colored by level with LogColor (the central store and
	// Elasticsearch still get JSON).
	LogText, LogColor bool
	// Now is the physical clock under the clouds' hybrid logical clocks,
	// which stamp acknowledgements (default time.Now); the chaos suite
	// skews one cloud's clock with it.
	Now func() time.Time
	// OnPublished is told the ids whose aggregates were just published.
	OnPublished func(ids []string)
	// Alerts, when set, receives one plain line whenever a cloud of this
	// process turns degraded or unhealthy (naming the stage and why),
	// again every AlertEvery while it stays so, and when it is healthy
	// again: the stderr of `intercloud demo`, whose log lines go to a
	// file. The same lines are logged (at ERROR while a stage fails): the
	// stderr of `intercloud up`.
	Alerts io.Writer
	// AlertEvery is how often lasting problems are announced again
	// (default DefaultAlertEvery).
	AlertEvery time.Duration
	// DefaultLogger makes the topology's logger the process's slog default
	// (and with it the output of the standard log package), so that what
	// dependencies log through either reaches the same JSON lines and the
	// central store. For the main of a process; tests leave it off.
	DefaultLogger bool
}

// Endpoint is a named URL the topology serves.
type Endpoint struct {
	Name string
	URL  string
}

// Topology is a running set of components.
type Topology struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger
	// keys are the API key (every scope) and the scoped keys of the keys
	// file.
	keys *auth.Keyring
	// tls holds each role's certificates; empty with TLS off.
	tls map[string]*certs.Source

	tracing  *telemetry.Tracing
	shipper  telemetry.Sink
	shippers []namedShipper
	logs     *logstore.Store
	clouds   map[string]*Cloud
	edge     *edge.Edge
	fresh    *freshness
	front    *frontdoor.FrontDoor

	alertMu sync.Mutex // serializes Options.Alerts

	edgeMu        sync.Mutex // guards edge while it starts, and pendingPurges
	pendingPurges []edge.PurgeRequest

	// registry is what the console's GET /metrics serves (front door,
	// edge); the histograms are the front door's and the edge's.
	registry                    *prometheus.Registry
	frontDuration, edgeDuration *prometheus.HistogramVec
	edgeBytes                   prometheus.Counter
	clientOnce                  sync.Once
	httpClient                  *http.Client

	servers   []*server
	serversMu sync.Mutex // guards servers against /metrics while they start
	endpoints []Endpoint
	// gates are the cloud APIs' listeners, answering from the start.
	gates   map[string]*gateServer
	readers map[*sqldb.DB][]replicate.Reader
	// holder names this process in the leases it takes.
	holder string

	// pipeline runs functions, streams and publishers; cancelled last.
	pipeCtx    context.Context
	pipeCancel context.CancelFunc
	pipeWG     sync.WaitGroup
	// shipCancel stops the log shipper after everything else.
	shipCancel context.CancelFunc
	shipDone   chan struct{}
	closers    []func() error
	stopOnce   sync.Once
	stopErr    error
}

// Cloud is one cloud's running part.
type Cloud struct {
	Name   string
	Bucket *objects.Bucket
	DB     *sqldb.DB
	API    *ingest.API
	// Clock versions the records the API acknowledges; the streams into
	// the cloud's database raise it to the versions they apply (in every
	// replica of the cloud, through clockTable).
	Clock   *hlc.Clock
	Loader  *load.Loader
	Load    *functions.Function
	Streams []*replicate.Stream
	// Validators validate the streams into this cloud in the background
	// (replication.validate_every).
	Validators []*replicate.Validator
	Publish    *publish.Publisher
	// Leases are the leases this process campaigns for in the cloud's
	// database, one per singleton role.
	Leases  []*lease.Lease
	api     *server
	health  *health
	fresh   *freshness
	ackRate rateMeter // acknowledged records, for the ingest rate
	// writeLock samples the database's write lock (WriteLockStatus).
	writeLock writeLockMeter
	// roleLease maps a role (a stream's name, "publish") to its lease.
	roleLease map[string]*lease.Lease
	// registry is what the cloud's GET /metrics serves; metrics its
	// histograms.
	registry *prometheus.Registry
	metrics  *telemetry.CloudMetrics
}

// namedShipper is a log shipper and what its sink is, for health reports.
type namedShipper struct {
	name string
	*telemetry.Shipper
}

type server struct {
	name string
	srv  *serve.Server
	url  string
}

// Start opens and starts every component of the roles asked for. On error,
// whatever was started is stopped again.
func Start(ctx context.Context, cfg *config.Config, opts Options) (t *Topology, err error) {
	if len(opts.Roles) == 0 {
		opts.Roles = append(cfg.CloudNames(), RoleGlobal)
	}
	for _, r := range opts.Roles {
		if _, ok := cfg.Clouds[r]; !ok && r != RoleGlobal {
			return nil, fmt.Errorf("topology: unknown role %q (have %s, %s)", r, strings.Join(cfg.CloudNames(), ", "), RoleGlobal)
		}
	}
	if opts.APIKey == "" {
		return nil, errors.New("topology: an API key is required")
	}
	if err := CheckDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	keys, err := auth.New(opts.APIKey, cfg.Auth.Keys)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	made, err := InitCerts(cfg)
	if err != nil {
		return nil, err
	}
	t = &Topology{cfg: cfg, opts: opts, clouds: map[string]*Cloud{}, keys: keys, tls: map[string]*certs.Source{}, holder: lease.NewHolder(), fresh: &freshness{}, gates: map[string]*gateServer{}}
	// How far the results are behind is known where they are published.
	t.fresh.known = slices.Contains(opts.Roles, cfg.Publish.Cloud)
	if !cfg.TLS.Disabled {
		for _, role := range opts.Roles {
			if t.tls[role], err = tlsSource(cfg, role); err != nil {
				return nil, fmt.Errorf("topology: %w", err)
			}
		}
	}
	defer func() {
		if err != nil {
			_ = t.Stop(context.Background())
			t = nil
		}
	}()
	t.pipeCtx, t.pipeCancel = context.WithCancel(context.Background())
	t.tracing, err = telemetry.NewTracing(ctx, telemetry.TracingOptions{
		Service: "intercloud-" + strings.Join(slices.Sorted(slices.Values(opts.Roles)), "+"), OTLP: cfg.Traces.OTLP, Keep: cfg.Traces.Keep,
	})
	if err != nil {
		return t, fmt.Errorf("topology: %w", err)
	}
	t.closers = append(t.closers, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return t.tracing.Shutdown(sctx)
	})
	if err := t.startLogs(ctx); err != nil {
		return t, err
	}
	// The clouds' APIs answer from now on: unhealthy, naming what start
	// waits for, until their part has started.
	if err := t.startGates(); err != nil {
		return t, err
	}
	// A store that does not answer yet (a database still starting) is
	// waited for; a store that is wrong fails the start.
	if err := t.startRetrying(ctx, "checking the stores", func(ctx context.Context) error {
		return CheckStores(ctx, cfg, opts.Roles, t.logger("", "check"))
	}); err != nil {
		return t, err
	}
	if made.CA || len(made.Roles) > 0 {
		t.log.Info("made TLS certificates (intercloud certs rotate replaces them)", "dir", cfg.TLS.Dir, "ca", made.CA, "roles", strings.Join(made.Roles, ","))
	}
	for _, name := range cfg.CloudNames() {
		if t.has(name) {
			if err := t.startCloud(ctx, name); err != nil {
				return t, err
			}
		}
	}
	for _, name := range cfg.CloudNames() {
		if t.has(name) {
			if err := t.startStreams(ctx, name); err != nil {
				return t, err
			}
		}
	}
	// The APIs take writes only once every change consumer has its place
	// in the databases' logs.
	for _, name := range cfg.CloudNames() {
		if t.has(name) {
			if err := t.serveAPI(name); err != nil {
				return t, err
			}
		}
	}
	if t.has(RoleGlobal) {
		if err := t.startGlobal(ctx); err != nil {
			return t, err
		}
	}
	for _, name := range cfg.CloudNames() {
		if c := t.clouds[name]; c != nil {
			if _, err := t.singleton(c, "prune", func(ctx context.Context) { t.pruneLoop(ctx, c) }); err != nil {
				return t, err
			}
		}
	}
	t.log.Info("topology started", "roles", strings.Join(opts.Roles, ","))
	return t, nil
}

// CheckDataDir creates the data directory (0700) when it is missing and
// refuses one that others may write to (world-writable): whoever can
// write there can replace databases, keys and certificates.
func CheckDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("topology: data dir: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("topology: data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("topology: data dir %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("topology: data dir %s is world-writable (mode %04o); run chmod o-w,g-w %s (0700 is best)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

func (t *Topology) has(role string) bool { return slices.Contains(t.opts.Roles, role) }

// logger returns a component's logger for a cloud ("" for global parts).
func (t *Topology) logger(cloud, component string) *slog.Logger {
	var sink telemetry.Sink
	if t.shipper != nil {
		sink = t.shipper
	}
	l := telemetry.NewLogger(telemetry.Options{Cloud: cloud, Level: t.opts.LogLevel, Writer: t.opts.LogWriter, Sink: sink,
		Text: t.opts.LogText, Color: t.opts.LogColor})
	return l.With("component", component)
}

// startLogs opens the central store (global role) and the shipper that
// sends this process's logs to it.
func (t *Topology) startLogs(ctx context.Context) error {
	logsURL := Scheme(t.cfg) + "://" + t.cfg.Logs.Listen
	if t.has(RoleGlobal) {
		st, err := logstore.Open(ctx, t.cfg.Logs.Store)
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		t.logs = st
		t.closers = append(t.closers, st.Close)
		t.goPipe(t.limitLogs)
		srv, err := t.serve("logs", t.cfg.Logs.Listen, st.HandlerKeys(t.keys))
		if err != nil {
			return err
		}
		logsURL = srv.url
	}
	// Each sink's buffer is on disk, one directory per sink and per set of
	// roles (processes of one data directory do not share one).
	bufDir := filepath.Join(t.cfg.DataDir, "log-buffer", strings.Join(slices.Sorted(slices.Values(t.opts.Roles)), "+"))
	central, err := telemetry.NewDiskShipper(telemetry.NewHTTPSink(logsURL+"/v1/logs", t.opts.APIKey, t.Client()),
		telemetry.ShipperOptions{Dir: filepath.Join(bufDir, "central")})
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	shippers := []*telemetry.Shipper{central}
	t.shippers = []namedShipper{{"central log store", central}}
	if es := t.cfg.Logs.Elasticsearch; es != "" {
		sh, err := telemetry.NewDiskShipper(telemetry.NewESBulkSink(es, t.cfg.Logs.Index, nil), telemetry.ShipperOptions{Dir: filepath.Join(bufDir, "elasticsearch")})
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		shippers = append(shippers, sh)
		t.shippers = append(t.shippers, namedShipper{"elasticsearch (logs.elasticsearch)", sh})
	}
	for _, sh := range shippers {
		t.closers = append(t.closers, sh.Close)
	}
	sinks := make([]telemetry.Sink, len(shippers))
	for i, sh := range shippers {
		sinks[i] = sh
	}
	t.shipper = telemetry.Tee(sinks...)
	shipCtx, cancel := context.WithCancel(context.Background())
	t.shipCancel, t.shipDone = cancel, make(chan struct{})
	var wg sync.WaitGroup
	for _, sh := range shippers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sh.Run(shipCtx)
		}()
	}
	go func() {
		wg.Wait()
		close(t.shipDone)
	}()
	t.log = t.logger("", "topology")
	if t.opts.DefaultLogger {
		cloud := ""
		if clouds := slices.DeleteFunc(slices.Clone(t.opts.Roles), func(r string) bool { return r == RoleGlobal }); len(clouds) == 1 {
			cloud = clouds[0]
		}
		slog.SetDefault(t.logger(cloud, "intercloud"))
	}
	return nil
}

func (t *Topology) startCloud(ctx context.Context, name string) error {
	cc := t.cfg.Clouds[name]
	c := &Cloud{Name: name, roleLease: map[string]*lease.Lease{}, Clock: hlc.New(t.opts.Now)}
	t.clouds[name] = c
	t.newCloudRegistry(c)
	hs := hosts.Settings{
		ObjectsURL: cc.Objects, SQLURL: cc.SQL, Schema: t.cfg.Schema,
		Logger: func(component string) *slog.Logger { return t.logger(name, component) },
	}
	// Publish commits its checkpoints under its lease, once it has one
	// (its first checkpoint, taken while it prepares, needs none: every
	// process would write the same).
	var pubLease atomic.Pointer[lease.Lease]
	if t.cfg.Publish.Cloud == name {
		hs.Publish, hs.Poll, hs.Source = &t.cfg.Publish, t.cfg.Replication.Poll.D(), t.cfg.Replication.Source
		hs.Purge, hs.OnPublished, hs.OnFresh = t.purger(), t.opts.OnPublished, c.metrics.ObserveFreshness
		hs.OnTraces = func(traces []string, tr publish.Trace) {
			t.tracing.Hop("publish", "publish: results written, edge purged", traces, tr.Start, tr.End, attribute.String("cloud", name))
			if p := tr.Purge; !p.Start.IsZero() {
				t.tracing.HopErr("edge", SpanEdgePurge, traces, p.Start, p.End, p.Err,
					attribute.String("cloud", name), attribute.Int("purge.tags", p.Tags), attribute.Bool("purge.remote", !t.has(RoleGlobal)))
				// The journey's last hop (the journey reads the logs).
				log := t.logger("", "edge")
				args := []any{"trace_id", strings.Join(traces, " "), "tags", p.Tags, "ms", p.End.Sub(p.Start).Milliseconds()}
				if p.Err != nil {
					log.Warn("edge purge failed; cached copies expire by their max-age", append(args, "err", p.Err)...)
				} else {
					log.Info("edge purged the published results", args...)
				}
			}
		}
		hs.PublishFence = func(ctx context.Context, tx *sql.Tx) error {
			if l := pubLease.Load(); l != nil {
				return l.Fence(ctx, tx)
			}
			return nil
		}
	}
	var st *hosts.Stack
	var err error
	if err := t.startRetrying(ctx, name+": opening the object store and the database", func(ctx context.Context) (err error) {
		st, err = hosts.Open(ctx, hs)
		return err
	}); err != nil {
		return fmt.Errorf("topology: %s: %w", name, err)
	}
	t.closers = append(t.closers, st.Close)
	c.Bucket, c.DB, c.Loader, c.Publish = st.Bucket, st.DB, st.Loader, st.Publisher
	if err := t.startRetrying(ctx, name+": the lease and clock tables", func(ctx context.Context) error {
		if err := lease.Ensure(ctx, c.DB); err != nil {
			return err
		}
		return c.DB.EnsureTable(ctx, clockTable)
	}); err != nil {
		return fmt.Errorf("topology: %s: %w", name, err)
	}
	t.goPipe(func(ctx context.Context) { t.syncClock(ctx, c) })
	c.fresh = t.fresh
	if c.Publish != nil {
		pub := c.Publish
		t.fresh.setPublisher(func() time.Time { return pub.Stats().NewestIngested })
	}
	// Capture changes before anything writes, so replication and publish
	// see every row.
	if err := t.startRetrying(ctx, name+": installing change capture", func(ctx context.Context) error {
		return t.prepareCapture(ctx, name, c.DB)
	}); err != nil {
		return err
	}
	// Checkpoints live on the targets only: a one-way stream's source
	// gets nothing written.
	if r := t.cfg.Replication; name == r.To || (name == r.From && r.ReverseEnabled()) {
		if err := t.startRetrying(ctx, name+": the checkpoint table", func(ctx context.Context) error {
			return replicate.EnsureCheckpoints(ctx, c.DB)
		}); err != nil {
			return fmt.Errorf("topology: %s: %w", name, err)
		}
	}
	f := t.cfg.Functions
	c.Load, err = functions.New(functions.Config{
		Name: "load", Handler: t.tracedLoad(name, timedLoad(c.Loader.Handler(), c.metrics)), DeadLetter: c.Loader.DeadLetter(),
		Concurrency: f.Concurrency, MaxAttempts: f.MaxAttempts, Backoff: f.Backoff.D(),
		MaxBackoff: f.MaxBackoff.D(), MaxAge: f.MaxAge.D(), Logger: t.logger(name, "functions"),
	})
	if err != nil {
		return fmt.Errorf("topology: %s: %w", name, err)
	}
	c.Bucket.OnCreate(func(e objects.Event) {
		if strings.HasPrefix(e.Key, load.RawPrefix) {
			c.Load.Submit(functions.Event{ID: e.Key, Metadata: e.Metadata, Source: e.Source})
		}
	})
	t.goPipe(func(ctx context.Context) { _ = c.Load.Run(ctx) })
	if cc.Notifications != "" {
		nlog := t.logger(name, "notify")
		l, err := notify.Open(ctx, cc.Notifications, func(_ context.Context, e objects.Event) error {
			if strings.HasPrefix(e.Key, load.RawPrefix) {
				c.Load.Submit(functions.Event{ID: e.Key, Metadata: e.Metadata, Source: e.Source})
			}
			return nil
		}, nlog)
		if err != nil {
			return fmt.Errorf("topology: %s: %w", name, err)
		}
		t.closers = append(t.closers, l.Close)
		t.goPipe(func(ctx context.Context) {
			if err := l.Run(ctx); err != nil {
				nlog.Error("notifications stopped; the reconciler still finds new objects", "err", err)
			}
		})
	}
	rec := &functions.Reconciler{List: c.Loader.Pending, Target: c.Load, Interval: f.Reconcile.D(), Logger: t.logger(name, "functions")}
	if _, err := t.singleton(c, "reconcile", func(ctx context.Context) { _ = rec.Run(ctx) }); err != nil {
		return err
	}

	c.health = &health{}
	t.checkHealth(ctx, c)
	t.goPipe(func(ctx context.Context) { t.watchHealth(ctx, c) })
	c.API, err = ingest.New(ingest.Config{
		Cloud: name, Bucket: c.Bucket, Schema: t.cfg.Schema, Limits: t.cfg.Ingest,
		Keys: t.keys, Logger: t.logger(name, "ingest"), Health: c.health.report, Now: t.opts.Now, Clock: c.Clock,
		Backlog: func() (time.Duration, bool) {
			age, _, ok := t.fresh.age(time.Now())
			return age, ok
		},
		OnAck: func(at time.Time, _ int) { t.fresh.acked(at) },
		OnCommit: func(records, _, bytes int, _ time.Duration) {
			c.metrics.BatchRecords.Observe(float64(records))
			c.metrics.BatchBytes.Observe(float64(bytes))
		},
	})
	if err != nil {
		return fmt.Errorf("topology: %s: %w", name, err)
	}

	if c.Publish != nil {
		l, err := t.singleton(c, "publish", func(ctx context.Context) { _ = c.Publish.Run(ctx) })
		if err != nil {
			return err
		}
		pubLease.Store(l)
	}
	if cc.Origin != "" {
		o := origin.New(origin.Config{Bucket: c.Bucket, Prefix: publish.ResultsPrefix, Logger: t.logger(name, "origin")})
		if _, err := t.serve(name+"-origin", cc.Origin, o); err != nil {
			return err
		}
	}
	return nil
}

// serveAPI opens a cloud's gate (listening since Start began) to its
// ingest API, status and metrics.
func (t *Topology) serveAPI(name string) error {
	c := t.clouds[name]
	mux := http.NewServeMux()
	mux.Handle("/", c.API)
	mux.Handle("POST "+ingest.PathRecords, instrumentIngest(t.tracing.Middleware("ingest", "ingest POST "+ingest.PathRecords, c.API), c.metrics))
	mux.HandleFunc("GET /v1/status", t.statusHandler(c))
	mux.Handle("GET /metrics", t.metricsHandler(c.registry))
	gs := t.gates[name]
	c.api = gs.srv
	var h http.Handler = mux
	gs.gate.open.Store(&h)
	return nil
}

// startStreams starts the replication streams whose target is this cloud:
// the configured one, and its reverse when enabled.
func (t *Topology) startStreams(ctx context.Context, name string) error {
	r := t.cfg.Replication
	// The reverse stream needs no full load: capture is installed on both
	// databases before anything writes, and a full load would copy back
	// the rows the forward stream brought in.
	type dir struct {
		from, to string
		reverse  bool
	}
	dirs := []dir{{r.From, r.To, false}}
	if r.ReverseEnabled() {
		dirs = append(dirs, dir{r.To, r.From, true})
	}
	for _, d := range dirs {
		if d.to != name {
			continue
		}
		log := t.logger(name, "replicate")
		streamName := d.from + "-to-" + d.to
		var src *sqldb.DB
		if err := t.startRetrying(ctx, streamName+": opening the source database", func(ctx context.Context) (err error) {
			src, err = t.openDB(ctx, d.from)
			return err
		}); err != nil {
			return err
		}
		// The forward stream resolves its tables through the mapping each
		// time it connects; the reverse one carries the unmapped tables.
		mapping, err := Mapping(t.cfg)
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		var tables []string
		if d.reverse {
			mapping = nil
			if err := t.startRetrying(ctx, streamName+": listing the tables", func(ctx context.Context) (err error) {
				tables, err = ReverseMapping(t.cfg).Tables(ctx, src)
				return err
			}); err != nil {
				return fmt.Errorf("topology: %s: %w", streamName, err)
			}
			if len(tables) == 0 {
				log.Info("no unmapped table to replicate back; reverse stream not started", "stream", streamName)
				continue
			}
		}
		var replicated *replicate.ReplicatedInserts
		if d.reverse {
			replicated = ReverseReplicatedInserts(t.cfg)
		}
		c := t.clouds[name]
		l, err := t.newLease(c, streamName)
		if err != nil {
			return err
		}
		s, err := replicate.New(replicate.Config{
			Name: streamName, Origin: d.from, Source: src, Target: c.DB,
			Tables: tables, Mapping: mapping, BatchSize: r.BatchSize, Poll: r.Poll.D(), SkipReplicated: r.ReverseEnabled(), SkipFullLoad: d.reverse,
			ReplicatedInserts: replicated,
			SourceMode:        SourceMode(t.cfg, src), TargetMode: SourceMode(t.cfg, c.DB),
			Fence: l.Fence, Version: load.Version, Observe: c.Clock.Observe,
			OnError: replicate.ErrorPolicy(r.OnError), TableOnError: onErrorTables(r.OnErrorTables), LoadParallel: r.LoadParallel,
			Schema: schemaMode(r.Schema, d.reverse),
			OnApplied: func(b replicate.Batch) {
				logApplied(log, b)
				observeApplied(t.clouds[name].metrics, streamName, b)
				t.traceApplied(name, streamName, b)
			},
			Logger: log,
		})
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		if d.reverse {
			// Without a full load, the stream must have its place in the
			// source's log (a Postgres slot) before anything writes.
			if err := t.startRetrying(ctx, streamName+": reserving its place in the source's log", func(ctx context.Context) error {
				return reserve(ctx, src, SourceMode(t.cfg, src), replicate.SourceConfig{Name: streamName, Tables: tables, ReplicatedInserts: replicated, Logger: log})
			}); err != nil {
				return err
			}
		}
		c.Streams = append(c.Streams, s)
		if every := r.ValidateEvery.D(); every > 0 && !d.reverse {
			v := &replicate.Validator{Source: src, Target: c.DB, Mapping: mapping, Every: every, Name: streamName,
				Ready: func() bool { return s.Status().Phase == replicate.PhaseCDC }, Logger: t.logger(name, "validate")}
			c.Validators = append(c.Validators, v)
			t.goPipe(v.Run)
		}
		t.runUnder(l, func(ctx context.Context) {
			if err := s.Run(ctx); err != nil {
				log.Error("replication stopped", "err", err)
			}
		})
	}
	return nil
}

// singleton runs role in one process of the cloud at a time: the one
// that holds the lease named role in the cloud's database. A standby takes
// over about one lease TTL after the holder died, at once after it
// stopped cleanly.
func (t *Topology) singleton(c *Cloud, role string, run func(ctx context.Context)) (*lease.Lease, error) {
	l, err := t.newLease(c, role)
	if err != nil {
		return nil, err
	}
	t.runUnder(l, run)
	return l, nil
}

// newLease makes the lease of a cloud's role (a stream's name, "publish",
// "reconcile", "prune"); runUnder starts campaigning for it.
func (t *Topology) newLease(c *Cloud, role string) (*lease.Lease, error) {
	l, err := lease.New(lease.Config{
		DB: c.DB, Name: role + "@" + c.Name, Holder: t.holder, TTL: t.cfg.Leases.TTL.D(),
		Logger: t.logger(c.Name, "lease"),
	})
	if err != nil {
		return nil, fmt.Errorf("topology: %s: %w", c.Name, err)
	}
	c.Leases = append(c.Leases, l)
	c.roleLease[role] = l
	return l, nil
}

// runUnder runs role while this process holds l.
func (t *Topology) runUnder(l *lease.Lease, run func(ctx context.Context)) {
	t.goPipe(func(ctx context.Context) {
		_ = l.Run(ctx, func(ctx context.Context, _ int64) { run(ctx) })
	})
}

// schemaMode is the forward stream's schema mode; the reverse stream's
// tables came from the forward one and keep their objects.
func schemaMode(s string, reverse bool) replicate.SchemaMode {
	if reverse {
		return ""
	}
	return replicate.SchemaMode(s)
}

// onErrorTables converts the per-table error policies of the config.
func onErrorTables(m map[string]string) map[string]replicate.ErrorPolicy {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]replicate.ErrorPolicy, len(m))
	for t, p := range m {
		out[t] = replicate.ErrorPolicy(p)
	}
	return out
}

// prepareCapture installs change capture on a cloud's database for the
// tables streams read from it: the unmapped replicated tables (the reverse
// stream's), and on the source cloud every table the mapping selects.
func (t *Topology) prepareCapture(ctx context.Context, name string, db *sqldb.DB) error {
	r := t.cfg.Replication
	// A one-way stream reads only its source: nothing is installed on the
	// target for a reverse stream that does not run.
	var tables []string
	if r.ReverseEnabled() && name == r.To {
		var err error
		if tables, err = ReverseMapping(t.cfg).Tables(ctx, db); err != nil {
			return fmt.Errorf("topology: %s: %w", name, err)
		}
	}
	if name == r.From {
		m, err := Mapping(t.cfg)
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		fwd, err := m.Tables(ctx, db)
		if err != nil {
			return fmt.Errorf("topology: %s: %w", name, err)
		}
		for _, tb := range fwd {
			if !slices.Contains(tables, tb) {
				tables = append(tables, tb)
			}
		}
	}
	if len(tables) == 0 {
		return nil
	}
	if err := replicate.PrepareMode(ctx, db, SourceMode(t.cfg, db), tables, t.logger(name, "replicate")); err != nil {
		return fmt.Errorf("topology: %s: %w", name, err)
	}
	return nil
}

// reserve opens a consumer's source once, which creates whatever per-consumer
// state the source keeps (a replication slot) from this point of the log.
func reserve(ctx context.Context, db *sqldb.DB, mode string, cfg replicate.SourceConfig) error {
	src, err := replicate.OpenSourceMode(ctx, db, mode, cfg)
	if err != nil {
		return fmt.Errorf("topology: %s: %w", cfg.Name, err)
	}
	if _, err := src.Current(ctx); err != nil {
		src.Close()
		return fmt.Errorf("topology: %s: %w", cfg.Name, err)
	}
	return src.Close()
}

// logApplied writes one line per applied batch with the trace ids of its
// rows, so a record's trace finds its replication.
func logApplied(log *slog.Logger, b replicate.Batch) {
	if len(b.Changes) == 0 {
		return
	}
	traces := map[string]bool{}
	for _, c := range b.Changes {
		if c.TraceID != "" {
			traces[c.TraceID] = true
		}
	}
	ids := make([]string, 0, len(traces))
	for id := range traces {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	log.Info("changes applied", "changes", len(b.Changes), "position", string(b.Position), "trace_id", strings.Join(ids, " "))
}

// openDB returns the database of a cloud, opening it when that cloud runs
// elsewhere (the stream reads the other cloud's database remotely).
func (t *Topology) openDB(ctx context.Context, name string) (*sqldb.DB, error) {
	if c, ok := t.clouds[name]; ok {
		return c.DB, nil
	}
	db, err := sqldb.Open(ctx, t.cfg.Clouds[name].SQL, t.logger(name, "sql"))
	if err != nil {
		return nil, fmt.Errorf("topology: %s: %w", name, err)
	}
	// That cloud's process may not have run yet: its records table (the
	// same DDL it runs itself) must exist before capture is installed,
	// when it is replicated; nothing else is written there.
	if m, err := Mapping(t.cfg); err == nil && m.Includes(t.cfg.Schema.Table) {
		if err := db.EnsureTable(ctx, record.Table(t.cfg.Schema)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("topology: %s: %w", name, err)
		}
	}
	if err := t.prepareCapture(ctx, name, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	t.closers = append(t.closers, db.Close)
	return db, nil
}

func (t *Topology) startGlobal(ctx context.Context) error {
	t.newGlobalRegistry()
	e, err := edge.New(t.edgeConfig())
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	t.closers = append(t.closers, e.Close)
	// Purges published while the edge was starting apply to what its disk
	// tier kept from the last run.
	t.edgeMu.Lock()
	t.edge = e
	for _, p := range t.pendingPurges {
		e.Purge(p)
	}
	t.pendingPurges = nil
	t.edgeMu.Unlock()
	if _, err := t.serveFast("edge", t.cfg.Edge.Listen, t.instrumentEdge(e), telemetry.InstrumentFast(e, t.edgeDuration, t.edgeBytes)); err != nil {
		return err
	}
	var backends []frontdoor.Backend
	for _, name := range t.cfg.FrontDoor.Priority {
		urls := t.cfg.FrontDoor.Backends[name]
		if len(urls) == 0 {
			urls = []string{t.urlOf(name+"-api", t.cfg.Clouds[name].API)}
		}
		for i, u := range urls {
			b := frontdoor.Backend{Name: name, Group: name, URL: u}
			if len(urls) > 1 {
				b.Name = fmt.Sprintf("%s-%d", name, i+1)
			}
			backends = append(backends, b)
		}
	}
	t.front, err = frontdoor.New(frontdoor.Config{
		Backends: backends, HealthInterval: t.cfg.FrontDoor.HealthInterval.D(),
		MaxBodyBytes: t.cfg.Ingest.MaxBodyBytes, Logger: t.logger("", "frontdoor"), Keys: t.keys, Client: t.frontDoorClient(),
	})
	if err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	t.goPipe(func(ctx context.Context) { _ = t.front.Run(ctx) })
	if _, err = t.serve("frontdoor", t.cfg.FrontDoor.Listen, telemetry.InstrumentHandler(t.tracing.Middleware("frontdoor", "frontdoor", t.front), t.frontDuration, nil)); err != nil {
		return err
	}
	_, err = t.serve("console", t.cfg.Console.Listen, t.consoleHandler())
	return err
}

// urlOf returns the URL of a server of this process by name, else the one
// the topology file gives.
func (t *Topology) urlOf(name, addr string) string {
	for _, s := range t.servers {
		if s.name == name {
			return s.url
		}
	}
	return Scheme(t.cfg) + "://" + addr
}

// edgeConfig maps the topology's edge section to the edge's config: the
// configured routes plus /results/ to the result store (edge.origins, else
// the publishing cloud's origin) unless a route claims /results/ itself.
func (t *Topology) edgeConfig() edge.Config {
	ec := t.cfg.Edge
	var routes []edge.Route
	results := false
	for _, r := range ec.Routes {
		routes = append(routes, edge.Route{Prefix: r.Prefix, Origins: r.Origins})
		results = results || r.Prefix == "/"+publish.ResultsPrefix
	}
	if !results {
		origins := ec.Origins
		if len(origins) == 0 {
			origins = []string{t.urlOf(t.cfg.Publish.Cloud+"-origin", t.cfg.Clouds[t.cfg.Publish.Cloud].Origin)}
		}
		routes = append(routes, edge.Route{Prefix: "/" + publish.ResultsPrefix, Origins: origins})
	}
	disk := ec.DiskDir
	if disk == "" {
		disk = filepath.Join(t.cfg.DataDir, "edge-cache")
	}
	return edge.Config{
		Routes: routes, TTL: ec.TTL.D(), StaleIfError: ec.StaleIfError.D(),
		MemoryBytes: ec.MemoryBytes, DiskDir: disk, DiskBytes: ec.DiskBytes, TargetedFields: ec.TargetedFields,
		Keys: t.keys, Logger: t.logger("", "edge"), Transport: t.edgeTransport(),
	}
}

// SpanEdgePurge names the span of an edge purge in each published
// record's trace.
const SpanEdgePurge = "edge purge"

// purger returns how publish purges the edge: in-process when the edge
// runs here, over HTTP otherwise.
func (t *Topology) purger() func(ctx context.Context, paths, tags []string) error {
	return func(ctx context.Context, paths, tags []string) error {
		req := edge.PurgeRequest{Paths: paths, Tags: tags}
		if !t.has(RoleGlobal) {
			return purgeHTTP(ctx, t.Client(), Scheme(t.cfg)+"://"+t.cfg.Edge.Listen, t.opts.APIKey, req)
		}
		t.edgeMu.Lock()
		e := t.edge
		if e == nil {
			t.pendingPurges = append(t.pendingPurges, req) // the edge is still starting
		}
		t.edgeMu.Unlock()
		if e != nil {
			e.Purge(req)
		}
		return nil
	}
}

// serve listens on addr and serves h until Stop, with the limits of
// package serve.
func (t *Topology) serve(name, addr string, h http.Handler) (*server, error) {
	return t.serveFast(name, addr, h, nil)
}

// serveFast is serve with a fast path in front of h (see
// serve.FastHandler), when fast is not nil.
func (t *Topology) serveFast(name, addr string, h http.Handler, fast serve.FastHandler) (*server, error) {
	log := t.log
	if log == nil {
		log = t.logger("", "topology")
	}
	hc := t.cfg.HTTP
	sc := serve.Config{Name: name, Addr: addr, Handler: h, Fast: fast, Logger: log.With("server", name), Limits: serve.Limits{
		ReadHeaderTimeout: hc.ReadHeaderTimeout.D(), ReadTimeout: hc.ReadTimeout.D(), WriteTimeout: hc.WriteTimeout.D(),
		IdleTimeout: hc.IdleTimeout.D(), MaxHeaderBytes: hc.MaxHeaderBytes, MinBodyRate: hc.MinBodyRate, BodyGrace: hc.BodyGrace.D(),
		MaxConnsPerIP: hc.MaxConnsPerIP, MaxRequestsPerKey: hc.MaxRequestsPerKey,
	}}
	if !t.cfg.TLS.Disabled {
		role, requireClient := serverRole(name)
		src := t.tls[role]
		if l, ok := t.cfg.TLS.Listeners[name]; ok {
			var err error
			if src, err = certs.NewSource(l.Cert, l.Key, caFile(t.cfg)); err != nil {
				return nil, fmt.Errorf("topology: tls.listeners.%s: %w", name, err)
			}
		}
		if src == nil {
			return nil, fmt.Errorf("topology: %s: no certificate for role %s", name, role)
		}
		sc.TLS = src.ServerConfig(requireClient)
	}
	srv, err := serve.Listen(sc)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	s := &server{name: name, url: srv.URL(), srv: srv}
	t.serversMu.Lock()
	t.servers = append(t.servers, s)
	t.serversMu.Unlock()
	t.endpoints = append(t.endpoints, Endpoint{Name: name, URL: s.url})
	return s, nil
}

func (t *Topology) goPipe(fn func(ctx context.Context)) {
	t.pipeWG.Add(1)
	go func() {
		defer t.pipeWG.Done()
		fn(t.pipeCtx)
	}()
}

// Endpoints lists the served URLs: front door first, then each cloud's API,
// the edge and the logs.
func (t *Topology) Endpoints() []Endpoint {
	order := map[string]int{"frontdoor": 0, "edge": 90, "console": 92, "logs": 95}
	eps := slices.Clone(t.endpoints)
	rank := func(e Endpoint) int {
		if r, ok := order[e.Name]; ok {
			return r
		}
		if strings.HasSuffix(e.Name, "-api") {
			return 10
		}
		return 50
	}
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return rank(a) - rank(b) })
	return eps
}

// URL returns the URL of a named endpoint, or "".
func (t *Topology) URL(name string) string {
	for _, e := range t.endpoints {
		if e.Name == name {
			return e.URL
		}
	}
	return ""
}

// Client returns an HTTP client for the topology's endpoints: with TLS on,
// it trusts the project CA and presents the certificate of one of the
// roles this process runs.
func (t *Topology) Client() *http.Client {
	t.clientOnce.Do(func() {
		t.httpClient = &http.Client{Timeout: 60 * time.Second}
		for _, role := range t.opts.Roles {
			if src := t.tls[role]; src != nil {
				t.httpClient.Transport = src.Transport(false)
				break
			}
		}
	})
	return t.httpClient
}

// Cloud returns a running cloud part, or nil.
func (t *Topology) Cloud(name string) *Cloud { return t.clouds[name] }

// Logs returns the central log store when this process runs it.
func (t *Topology) Logs() *logstore.Store { return t.logs }

// Edge returns the edge when this process runs it.
func (t *Topology) Edge() *edge.Edge {
	t.edgeMu.Lock()
	defer t.edgeMu.Unlock()
	return t.edge
}

// FrontDoor returns the front door when this process runs it.
func (t *Topology) FrontDoor() *frontdoor.FrontDoor { return t.front }

// StopAPI stops one cloud's ingest API as an outage would: its listener
// closes and requests are refused. Pending writes are still completed.
func (t *Topology) StopAPI(ctx context.Context, cloud string) error {
	c := t.clouds[cloud]
	if c == nil || c.api == nil {
		return fmt.Errorf("topology: no API of cloud %q runs here", cloud)
	}
	err := c.api.srv.Shutdown(ctx)
	return errors.Join(err, c.API.Close(ctx))
}

// Stop shuts down gracefully: the front door and the APIs stop taking
// requests and finish the ones in flight, pending group commits are written,
// then the pipeline stops and the stores close. Safe to call twice and after
// a failed Start.
func (t *Topology) Stop(ctx context.Context) error {
	t.stopOnce.Do(func() { t.stopErr = t.stop(ctx) })
	return t.stopErr
}

func (t *Topology) stop(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	shutdown := func(match func(string) bool) {
		var wg sync.WaitGroup
		for _, s := range t.servers {
			if match(s.name) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.srv.Shutdown(ctx); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("topology: stop %s: %w", s.name, err))
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
	}
	shutdown(func(n string) bool { return n == "frontdoor" })
	shutdown(func(n string) bool { return strings.HasSuffix(n, "-api") })
	for _, c := range t.clouds {
		if c.API != nil {
			if err := c.API.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if t.pipeCancel != nil {
		t.pipeCancel()
	}
	t.pipeWG.Wait()
	shutdown(func(n string) bool { return n != "logs" })
	if t.log != nil {
		t.log.Info("topology stopped")
	}
	// The last lines reach the central store before it stops.
	if t.shipCancel != nil {
		t.shipCancel()
		<-t.shipDone
	}
	shutdown(func(string) bool { return true })
	for i := len(t.closers) - 1; i >= 0; i-- {
		if err := t.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
