// Package config is the intercloud topology file as plain data: the
// clouds, one URL per service on each, the record schema, and the settings
// of every stage. It parses the file, fills the topology's own defaults
// (where things are, who replicates and publishes) and checks structure:
// unknown keys, URLs whose scheme no driver of this binary registered (it
// asks internal/registry), addresses, references between sections, the
// schema and the text of the replication mappings. It imports no
// component: each component fills and checks its own settings when the
// topology builds it, so a zero setting here means "that component's
// default".
//
// A missing file means the embedded default: every service on files and
// SQLite under one data directory, every endpoint on 127.0.0.1.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/intercloud/intercloud/internal/redact"
	"github.com/intercloud/intercloud/internal/registry"
	"github.com/intercloud/intercloud/replicate/rowfilter"
)

// DefaultDataDir is where the embedded default keeps its state.
const DefaultDataDir = "intercloud-data"

// Config is the whole topology. The zero value is not useful: use Default
// (which fills the defaults), or Load or Parse (which also validate).
type Config struct {
	// DataDir holds embedded state: files, SQLite databases, the API key.
	DataDir string `yaml:"data_dir"`
	// APIKey is the bearer key the ingest APIs accept. The
	// INTERCLOUD_API_KEY environment variable overrides it; when both are
	// empty, a key is made and kept in DataDir.
	APIKey string `yaml:"api_key"`
	// Clouds maps a cloud's name ("aws", "azure") to its services.
	Clouds map[string]*Cloud `yaml:"clouds"`
	// Schema is what every ingested record is validated against.
	Schema Schema `yaml:"schema"`
	// Replication is the database stream between the clouds.
	Replication Replication `yaml:"replication"`
	// Ingest tunes the ingest APIs.
	Ingest Ingest `yaml:"ingest"`
	// Functions tunes the function hosts.
	Functions Functions `yaml:"functions"`
	// Publish configures the aggregating function.
	Publish Publish `yaml:"publish"`
	// Edge configures the CDN edge.
	Edge Edge `yaml:"edge"`
	// FrontDoor configures the global router.
	FrontDoor FrontDoor `yaml:"frontdoor"`
	// Leases configures the leases of the roles that run once per cloud.
	Leases Leases `yaml:"leases"`
	// Retention bounds what the platform keeps.
	Retention Retention `yaml:"retention"`
	// Logs configures the central log store.
	Logs Logs `yaml:"logs"`
	// Console configures the live page and the global status.
	Console Console `yaml:"console"`
	// Traces configures OpenTelemetry tracing.
	Traces Traces `yaml:"traces"`
	// Auth configures the scoped keys.
	Auth Auth `yaml:"auth"`
	// TLS secures every listener and every hop between the parts.
	TLS TLS `yaml:"tls"`
	// HTTP bounds what a request and a client may take on every listener.
	HTTP HTTP `yaml:"http"`
}

// HTTP bounds requests and clients on every listener. Zero fields take
// package internal/serve's defaults; negative ones turn the limit off.
type HTTP struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`
	// MinBodyRate is bytes per second on average after BodyGrace.
	MinBodyRate       int64    `yaml:"min_body_rate"`
	BodyGrace         Duration `yaml:"body_grace"`
	MaxConnsPerIP     int      `yaml:"max_conns_per_ip"`
	MaxRequestsPerKey int      `yaml:"max_requests_per_key"`
}

// Auth configures who may call the APIs besides the API key (which holds
// every scope).
type Auth struct {
	// Keys is the keys file `intercloud keys` manages (default
	// <data_dir>/keys.json).
	Keys string `yaml:"keys"`
	// PublicMetrics serves GET /metrics without a key (for a scraper
	// that sends none); by default it needs a key of scope read.
	PublicMetrics bool `yaml:"public_metrics"`
}

// TLS secures the listeners (HTTPS, HTTP/2) and the hops between the
// parts (mutual TLS from a project CA).
type TLS struct {
	// Disabled serves plain HTTP everywhere.
	Disabled bool `yaml:"disabled"`
	// Dir holds the CA and the per-role certificates `intercloud certs
	// init` makes; `up` makes them on first start when missing (default
	// <data_dir>/tls).
	Dir string `yaml:"dir"`
	// Cert and Key, when set, are PEM files of one certificate every
	// listener serves and every hop presents, instead of the per-role
	// ones in Dir; CA is the PEM bundle peers' certificates must chain to
	// (default Dir's ca.crt). Files are re-read when they change.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// Listeners give one listener its own certificate (a public one for
	// the front door, say), by endpoint name: frontdoor, edge, logs,
	// <cloud>-api, <cloud>-origin.
	Listeners map[string]ListenerTLS `yaml:"listeners"`
}

// ListenerTLS is one listener's certificate and key (PEM files, re-read
// when they change).
type ListenerTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Traces configures OpenTelemetry tracing. Spans are always kept in the
// process's embedded store (the console shows them); OTLP also exports
// them to a collector.
type Traces struct {
	// OTLP is an OTLP/HTTP collector's base URL (http://host:4318); empty
	// exports nothing.
	OTLP string `yaml:"otlp"`
	// Keep bounds the spans the embedded store keeps (0: telemetry's
	// default).
	Keep int `yaml:"keep"`
}

// Console configures the live page (served by the global role): both
// clouds drawn with their health and throughput, and GET /v1/status for
// the parts of no cloud (front door, edge).
type Console struct {
	Listen string `yaml:"listen"`
}

// Cloud is one cloud's services, each named by URL.
type Cloud struct {
	// Objects is the object store URL: file:///dir, s3://bucket?..., azblob://container?...
	Objects string `yaml:"objects"`
	// SQL is the database URL: sqlite:///file.db, mysql://..., postgres://..., sqlserver://...
	SQL string `yaml:"sql"`
	// API is the listen address of this cloud's ingest API.
	API string `yaml:"api"`
	// Notifications optionally names where the object store announces new
	// objects written by others: webhook://127.0.0.1:PORT/path (S3 event
	// webhook), sqs://QUEUE?region=..., azqueue://QUEUE?service_url=...
	// (Event Grid through a Storage Queue). Objects our own ingest writes
	// are announced in-process, and a reconciler finds any that are missed.
	Notifications string `yaml:"notifications"`
	// Origin is the listen address of this cloud's public result endpoint
	// (the storage account's web endpoint the edge pulls from). Empty on a
	// cloud that publishes nothing.
	Origin string `yaml:"origin"`
}

// Field is one field of the record schema.
type Field struct {
	Name     string `yaml:"name"`
	Type     string `yaml:"type"` // string, number, integer, boolean, timestamp
	Required bool   `yaml:"required"`
	// MaxLength bounds a string field in bytes; 0 means DefaultMaxLength
	// (see MaxLen).
	MaxLength int `yaml:"max_length"`
}

// Field types a schema may use.
const (
	TypeString    = "string"
	TypeNumber    = "number"
	TypeInteger   = "integer"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
)

// fieldTypes lists the field types in the order errors name them.
var fieldTypes = []string{TypeString, TypeNumber, TypeInteger, TypeBoolean, TypeTimestamp}

// DefaultMaxLength bounds a string field whose MaxLength is 0.
const DefaultMaxLength = 1024

// MaxLen returns the field's MaxLength, DefaultMaxLength when it is 0.
func (f Field) MaxLen() int {
	if f.MaxLength == 0 {
		return DefaultMaxLength
	}
	return f.MaxLength
}

// Schema is the record schema: the table the records land in and its fields.
// Every record also has an "id" primary key, which is not listed.
type Schema struct {
	Table  string  `yaml:"table"`
	Fields []Field `yaml:"fields"`
}

// Field returns the named field and whether it exists.
func (s Schema) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Replication names the stream's direction, its tables and how they are
// mapped onto the target.
type Replication struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// Tables are the source tables replicated: plain names or path.Match
	// patterns ("orders_*"), matched against the source's tables when the
	// stream starts.
	Tables []string `yaml:"tables"`
	// Exclude are patterns of tables not replicated although Tables
	// matches them. Internal tables (_ic_*) are never replicated.
	Exclude []string `yaml:"exclude"`
	// Mappings rename tables and columns, leave columns out and filter
	// rows; the first mapping whose table pattern matches applies. Mapped
	// tables replicate from From to To only: the reverse stream leaves them
	// out.
	Mappings []Mapping `yaml:"mappings"`
	// Reverse also replicates To → From (records ingested on the second
	// cloud during an outage flow back), skipping replicated changes so
	// nothing echoes.
	Reverse *bool `yaml:"reverse"`
	// BatchSize bounds the changes applied in one target transaction
	// (0: package replicate's default, which also checks it).
	BatchSize int `yaml:"batch_size"`
	// Poll is how often an idle source is asked for new changes (0:
	// package replicate's default).
	Poll Duration `yaml:"poll"`
	// OnError is what a stream does with a change its target rejects
	// (after retries): "stop" (the default) stops that table alone and
	// names it in status, /metrics and the log; "skip" writes the change
	// to _ic_apply_exceptions on the target and goes on.
	OnError string `yaml:"on_error"`
	// OnErrorTables overrides OnError per table: name or pattern →
	// "stop" or "skip".
	OnErrorTables map[string]string `yaml:"on_error_tables"`
	// LoadParallel is how many tables the full load copies at once (0:
	// package replicate's default, 4).
	LoadParallel int `yaml:"load_parallel"`
	// Schema is "tables" (the default: tables, columns, primary keys) or
	// "full" (also the source's secondary indexes, defaults and foreign
	// keys, created after the full load; see package replicate).
	Schema string `yaml:"schema"`
	// ValidateEvery, when set, validates the replicated tables again in
	// the background at this interval (continuous validation) and exports
	// the differing rows in status and /metrics.
	ValidateEvery Duration `yaml:"validate_every"`
	// Source is how the streams (and publish) read a database's changes:
	// SourceLog (the database's own change log: binlog, logical
	// decoding, SQLite's change table, SQL Server's change data
	// capture) or SourcePoll (queries on a trigger-fed change table, for
	// any SQL database). Empty: each database's log where this binary has
	// a log source for it that needs nothing enabled by an operator, poll
	// otherwise (SQL Server, whose CDC source runs only with source: log);
	// see SourceMode.
	Source string `yaml:"source"`
}

// The values of replication.source.
const (
	SourceLog  = "log"
	SourcePoll = "poll"
)

// SourceMode is the mode a stream or publish reads a database in:
// replication.source when set, else SourceLog when the database has a
// log-based source in this binary (hasLog) and SourcePoll when it has not.
func (r Replication) SourceMode(hasLog bool) string {
	switch {
	case r.Source != "":
		return r.Source
	case hasLog:
		return SourceLog
	}
	return SourcePoll
}

// ReverseEnabled reports whether the reverse stream runs.
func (r Replication) ReverseEnabled() bool { return r.Reverse == nil || *r.Reverse }

// Mapping is one table-mapping rule of the replication.
type Mapping struct {
	// Table is a pattern of the source tables the rule applies to.
	Table string `yaml:"table"`
	// Rename is the target table's name; {table} stands for the source
	// table's name ("copy_{table}").
	Rename string `yaml:"rename"`
	// Columns renames columns: source name → target name.
	Columns map[string]string `yaml:"columns"`
	// ExcludeColumns are columns not replicated (never a primary-key
	// column).
	ExcludeColumns []string `yaml:"exclude_columns"`
	// Types overrides the portable type of columns: source name → type
	// name (bool, int16, text, timestamptz, ...; see the README's type
	// table), checked when the replication starts.
	Types map[string]string `yaml:"types"`
	// Filter selects the rows replicated, e.g. "status = 'paid' AND
	// amount >= 10" (see package replicate/rowfilter for the language).
	Filter string `yaml:"filter"`
}

// Ingest tunes the ingest APIs. Zero fields take the defaults of package
// ingest, which also checks the values.
type Ingest struct {
	// MaxBodyBytes bounds one request body (413 past it).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxRecords bounds the records of one request (413 past it).
	MaxRecords int `yaml:"max_records"`
	// BatchBytes bounds one group-committed object.
	BatchBytes int `yaml:"batch_bytes"`
	// BatchWait bounds how long the first request of a group waits for
	// others, those still being read and those queueing behind an object
	// being written; a group closes at once when no other request is
	// being read and no object is being written.
	BatchWait Duration `yaml:"batch_wait"`
	// RateLimit is requests per second per key (429 past it); 0 means none.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is the burst the rate limit allows.
	RateBurst int `yaml:"rate_burst"`
	// MaxBacklog turns on admission control: while the oldest
	// acknowledged record not yet in the published results is older than
	// this, writes are refused with 503 and Retry-After; 0 means off.
	MaxBacklog Duration `yaml:"max_backlog"`
	// DegradedBacklog is the age of that record past which /healthz says
	// degraded.
	DegradedBacklog Duration `yaml:"degraded_backlog"`
	// IdempotencyWindow is how long an API remembers the request an
	// Idempotency-Key came with (the same key with another request is a
	// 422); IdempotencyKeys bounds the keys it remembers, oldest forgotten
	// first. Zero takes package ingest's defaults (24h, 262144).
	IdempotencyWindow Duration `yaml:"idempotency_window"`
	IdempotencyKeys   int      `yaml:"idempotency_keys"`
}

// Functions tunes every function host. Zero fields take the defaults of
// package functions (functions.Config, functions.Reconciler); negative
// ones are refused here.
type Functions struct {
	// Concurrency bounds the invocations running at once per function.
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts, when set, dead-letters an event after this many
	// deliveries whose failures are not transient; transient failures (a
	// dependency down or busy) are retried until MaxAge whatever it says.
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the first retry delay; it doubles per attempt, with
	// jitter, up to MaxBackoff.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// MaxAge is how long a failing event is retried before it is
	// dead-lettered (the function host's default: 24h).
	MaxAge Duration `yaml:"max_age"`
	// Reconcile is how often unprocessed objects are looked for.
	Reconcile Duration `yaml:"reconcile"`
}

// Publish configures the aggregating function. Empty fields other than
// Cloud take the defaults of package publish, which also checks that they
// name fields of the schema.
type Publish struct {
	// Cloud is where the function runs and writes results (default the
	// replication's target).
	Cloud string `yaml:"cloud"`
	// GroupBy is the field the aggregates are grouped by.
	GroupBy string `yaml:"group_by"`
	// Value is the numeric field that is aggregated.
	Value string `yaml:"value"`
	// Time is the timestamp field that picks the hourly bucket.
	Time string `yaml:"time"`
}

// Edge configures the CDN edge. Zero durations take the defaults of
// package edge, which also checks the origins and durations.
type Edge struct {
	Listen string `yaml:"listen"`
	// Origins are the result endpoints, tried in order; empty means the
	// publishing cloud's origin.
	Origins []string `yaml:"origins"`
	// TTL is how long a cached response is fresh.
	TTL Duration `yaml:"ttl"`
	// StaleIfError is how long a stale response may be served while the
	// origin fails, where the response does not forbid it.
	StaleIfError Duration `yaml:"stale_if_error"`
	// Routes map path prefixes to origins, tried in order; /results/ to
	// the result store stays the default. The edge validates them.
	Routes []EdgeRoute `yaml:"routes"`
	// TargetedFields are the targeted cache-control fields the edge obeys
	// (RFC 9213); empty means CDN-Cache-Control.
	TargetedFields []string `yaml:"targeted_fields"`
	// DiskDir holds the edge's disk tier; empty means <data_dir>/edge-cache.
	DiskDir string `yaml:"disk_dir"`
	// DiskBytes bounds the disk tier; MemoryBytes the memory tier (0: the
	// edge's defaults).
	DiskBytes   int64 `yaml:"disk_bytes"`
	MemoryBytes int64 `yaml:"memory_bytes"`
}

// EdgeRoute sends requests under a path prefix to origins.
type EdgeRoute struct {
	Prefix  string   `yaml:"prefix"`
	Origins []string `yaml:"origins"`
}

// FrontDoor configures the global router. A zero HealthInterval takes the
// default of package frontdoor.
type FrontDoor struct {
	Listen string `yaml:"listen"`
	// Priority lists the clouds in the order writes prefer them.
	Priority []string `yaml:"priority"`
	// HealthInterval is how often every API's health is checked.
	HealthInterval Duration `yaml:"health_interval"`
	// Backends lists, per cloud, the URLs of its API replicas (several
	// `intercloud up --cloud NAME` processes); a cloud left out is reached
	// at its api address.
	Backends map[string][]string `yaml:"backends"`
}

// Leases configures the leases by which one process of a cloud runs each
// singleton role (a replication stream, publish, the reconciler,
// trimming). A zero TTL takes the default of package lease.
type Leases struct {
	// TTL is how long a holder that stopped renewing keeps its lease: a
	// standby takes over about one TTL after the holder died.
	TTL Duration `yaml:"ttl"`
}

// Retention bounds storage. Zero durations and sizes take the defaults of
// the components that apply them.
type Retention struct {
	// Raw is how long a raw object is kept once it is loaded (default 7
	// days); dead-lettered objects are never deleted by retention.
	Raw Duration `yaml:"raw"`
	// KeepRaw turns raw object retention off (for stores that expire
	// objects themselves with a lifecycle rule).
	KeepRaw bool `yaml:"keep_raw"`
}

// Logs configures the central log store.
type Logs struct {
	Listen string `yaml:"listen"`
	// Store is the log store URL: sqlite:///file.db.
	Store string `yaml:"store"`
	// Level is the lowest level logged: debug, info, warn, error.
	Level string `yaml:"level"`
	// Elasticsearch optionally also sends every log line to an
	// Elasticsearch bulk API (the URL before /_bulk; a query such as
	// VictoriaLogs' ?_msg_field=message&_time_field=@timestamp is kept).
	Elasticsearch string `yaml:"elasticsearch"`
	// Index is the Elasticsearch index (default telemetry.DefaultIndex).
	Index string `yaml:"index"`
	// MaxAge is how long the central store keeps a line (default 7 days).
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes bounds the central store's size; the oldest lines go
	// first (default 1 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
}

// Duration is a time.Duration written as "250ms", "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 250ms or 5s)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the embedded default topology under dataDir (DefaultDataDir
// when empty): both clouds on files and SQLite, endpoints on 127.0.0.1.
func Default(dataDir string) *Config {
	c := &Config{DataDir: dataDir}
	c.fill()
	return c
}

// Load reads the topology file at path; an empty path means the embedded
// default. A non-empty dataDir overrides the file's data_dir.
func Load(path, dataDir string) (*Config, error) {
	if path == "" {
		c := Default(dataDir)
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b, dataDir)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, errors.Unwrap(err))
	}
	return c, nil
}

// LoadValue reads a topology from a setting that is empty (the embedded
// default), a file path, or inline YAML, as functions configured by
// environment variables receive it. dataDir is as for Parse.
func LoadValue(v, dataDir string) (*Config, error) {
	if v == "" {
		c := Default(dataDir)
		return c, c.Validate()
	}
	if !strings.Contains(v, "\n") {
		b, err := os.ReadFile(v)
		if err == nil {
			return Parse(b, dataDir)
		}
		if !strings.Contains(v, ":") {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return Parse([]byte(v), dataDir)
}

// Parse reads a topology from YAML, fills defaults and validates it. Unknown
// keys are errors. A non-empty dataDir overrides data_dir.
func Parse(b []byte, dataDir string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", fmt.Errorf("%s", yamlMessage(err)))
	}
	if dataDir != "" {
		c.DataDir = dataDir
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// yamlMessage turns the YAML decoder's wording into ours: "unknown key".
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	if i := strings.Index(msg, "field "); i >= 0 && strings.Contains(msg, " not found in type ") {
		rest := msg[i+len("field "):]
		name := rest[:strings.Index(rest, " not found in type ")]
		return msg[:i] + fmt.Sprintf("unknown key %q", name)
	}
	return msg
}

// fill sets the topology's own defaults: where things are (the data
// directory, each cloud's URLs and addresses, the listen addresses), the
// record schema, and which clouds replicate, publish and take writes.
// Settings a component owns (limits, intervals, TTLs, batch sizes) stay
// zero here and take that component's defaults when it is built.
func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	dir, err := filepath.Abs(c.DataDir)
	if err == nil {
		c.DataDir = dir
	}
	c.fillClouds()
	c.Schema.fill()
	r := &c.Replication
	if r.From == "" && r.To == "" {
		r.From, r.To = "aws", "azure"
	}
	if len(r.Tables) == 0 {
		r.Tables = []string{c.Schema.Table}
	}
	if c.Publish.Cloud == "" {
		c.Publish.Cloud = r.To
	}
	if c.Edge.Listen == "" {
		c.Edge.Listen = "127.0.0.1:8083"
	}
	if c.FrontDoor.Listen == "" {
		c.FrontDoor.Listen = "127.0.0.1:8080"
	}
	if len(c.FrontDoor.Priority) == 0 {
		c.FrontDoor.Priority = []string{r.From, r.To}
	}
	if c.Console.Listen == "" {
		c.Console.Listen = "127.0.0.1:8086"
	}
	l := &c.Logs
	if l.Listen == "" {
		l.Listen = "127.0.0.1:8084"
	}
	if l.Store == "" {
		l.Store = "sqlite://" + filepath.ToSlash(filepath.Join(c.DataDir, "logs.db"))
	}
	if l.Level == "" {
		l.Level = "info"
	}
	if c.Auth.Keys == "" {
		c.Auth.Keys = filepath.Join(c.DataDir, "keys.json")
	}
	if c.TLS.Dir == "" {
		c.TLS.Dir = filepath.Join(c.DataDir, "tls")
	}
}

// DefaultClouds are the clouds of the embedded default.
var DefaultClouds = []string{"aws", "azure"}

// fillClouds gives the topology the default clouds it leaves out and every
// cloud the services it leaves out: files and SQLite under the data
// directory, and the default addresses of aws and azure. A file that names
// only default clouds (say only clouds.azure.objects) keeps the other
// default cloud whole; a file that names a cloud of its own declares all
// of its clouds.
func (c *Config) fillClouds() {
	if c.Clouds == nil {
		c.Clouds = map[string]*Cloud{}
	}
	own := false
	for name := range c.Clouds {
		own = own || !slices.Contains(DefaultClouds, name)
	}
	if !own {
		for _, name := range DefaultClouds {
			if _, ok := c.Clouds[name]; !ok {
				c.Clouds[name] = &Cloud{}
			}
		}
	}
	ports := map[string][2]string{"aws": {"127.0.0.1:8081", ""}, "azure": {"127.0.0.1:8082", "127.0.0.1:8085"}}
	for name, cl := range c.Clouds {
		if cl == nil {
			cl = &Cloud{}
			c.Clouds[name] = cl
		}
		if cl.Objects == "" {
			cl.Objects = "file://" + filepath.ToSlash(filepath.Join(c.DataDir, name, "objects"))
		}
		if cl.SQL == "" {
			cl.SQL = "sqlite://" + filepath.ToSlash(filepath.Join(c.DataDir, name, "sql.db"))
		}
		if cl.API == "" {
			cl.API = ports[name][0]
		}
		if cl.Origin == "" {
			cl.Origin = ports[name][1]
		}
	}
}

// fill gives an empty schema the default table and fields.
func (s *Schema) fill() {
	if s.Table == "" {
		s.Table = "records"
	}
	if len(s.Fields) == 0 {
		s.Fields = []Field{
			{Name: "device", Type: TypeString, Required: true},
			{Name: "metric", Type: TypeString, Required: true},
			{Name: "value", Type: TypeNumber, Required: true},
			{Name: "ts", Type: TypeTimestamp, Required: true},
		}
	}
}

// Driver kinds whose registries say which URL schemes this binary
// accepts (see package internal/registry): the kinds the objects, sqldb
// and objects/notify packages register their drivers under.
const (
	objectsKind = "objects"
	sqlKind     = "sqldb"
	notifyKind  = "notify"
)

// badFunc collects one error naming a key.
type badFunc func(key, format string, a ...any)

// Validate checks the topology's structure and names every bad key: the
// clouds and their URLs (a scheme is accepted iff this binary registered a
// driver for it), addresses, references between sections, the record
// schema and the text of the replication mappings. The values a component
// owns (limits, intervals, the publish fields) are checked by that
// component when it is built.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	c.validateClouds(bad)
	if err := c.Schema.Validate(); err != nil {
		errs = append(errs, err)
	}
	c.validateReplication(bad)
	if c.Functions.Concurrency < 0 || c.Functions.MaxAttempts < 0 || c.Functions.Backoff < 0 || c.Functions.Reconcile < 0 ||
		c.Functions.MaxBackoff < 0 || c.Functions.MaxAge < 0 {
		bad("functions", "settings must not be negative")
	}
	p := c.Publish
	c.checkCloud(bad, "publish.cloud", p.Cloud)
	if pc, ok := c.Clouds[p.Cloud]; ok && pc.Origin == "" && len(c.Edge.Origins) == 0 {
		bad("clouds."+p.Cloud+".origin", "the publishing cloud needs a result origin address")
	}
	checkAddr(bad, "edge.listen", c.Edge.Listen, true)
	checkAddr(bad, "frontdoor.listen", c.FrontDoor.Listen, true)
	for i, name := range c.FrontDoor.Priority {
		c.checkCloud(bad, fmt.Sprintf("frontdoor.priority[%d]", i), name)
	}
	for _, name := range slices.Sorted(maps.Keys(c.FrontDoor.Backends)) {
		key := "frontdoor.backends." + name
		c.checkCloud(bad, key, name)
		urls := c.FrontDoor.Backends[name]
		if len(urls) == 0 {
			bad(key, "list at least one URL, or leave the cloud out")
		}
		for i, u := range urls {
			checkURL(bad, fmt.Sprintf("%s[%d]", key, i), u, []string{"http", "https"})
		}
	}
	if c.Leases.TTL < 0 {
		bad("leases.ttl", "must not be negative")
	} else if c.Leases.TTL > 0 && c.Leases.TTL.D() < 300*time.Millisecond {
		bad("leases.ttl", "%v is below 300ms", c.Leases.TTL.D())
	}
	if c.Retention.Raw < 0 {
		bad("retention.raw", "must not be negative")
	}
	if c.Logs.MaxAge < 0 {
		bad("logs.max_age", "must not be negative")
	}
	if c.Logs.MaxBytes < 0 {
		bad("logs.max_bytes", "must not be negative")
	}
	checkAddr(bad, "logs.listen", c.Logs.Listen, true)
	checkAddr(bad, "console.listen", c.Console.Listen, true)
	if c.Traces.OTLP != "" {
		checkURL(bad, "traces.otlp", c.Traces.OTLP, []string{"http", "https"})
	}
	if c.Traces.Keep < 0 {
		bad("traces.keep", "must not be negative")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together")
	}
	for name, l := range c.TLS.Listeners {
		if l.Cert == "" || l.Key == "" {
			bad("tls.listeners."+name, "cert and key are required")
		}
		if !c.isListener(name) {
			bad("tls.listeners."+name, "no such listener (have frontdoor, edge, logs, <cloud>-api, <cloud>-origin)")
		}
	}
	if c.TLS.Disabled && (c.TLS.Cert != "" || c.TLS.CA != "") {
		bad("tls.disabled", "TLS is off, yet tls.cert or tls.ca is set")
	}
	if c.Ingest.IdempotencyWindow < 0 || c.Ingest.IdempotencyKeys < 0 {
		bad("ingest", "idempotency_window and idempotency_keys must not be negative")
	}
	checkURL(bad, "logs.store", c.Logs.Store, []string{"sqlite"})
	if c.Logs.Elasticsearch != "" {
		checkURL(bad, "logs.elasticsearch", c.Logs.Elasticsearch, []string{"http", "https"})
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Logs.Level) {
		bad("logs.level", "%q is not one of debug, info, warn, error", c.Logs.Level)
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// validateClouds checks every cloud's URLs and addresses.
func (c *Config) validateClouds(bad badFunc) {
	names := c.CloudNames()
	if len(names) == 0 {
		bad("clouds", "at least one cloud is required")
	}
	for _, name := range names {
		cl := c.Clouds[name]
		key := "clouds." + name
		checkDriverURL(bad, key+".objects", cl.Objects, objectsKind)
		checkDriverURL(bad, key+".sql", cl.SQL, sqlKind)
		if cl.Notifications != "" {
			checkDriverURL(bad, key+".notifications", cl.Notifications, notifyKind)
		}
		checkAddr(bad, key+".api", cl.API, true)
		checkAddr(bad, key+".origin", cl.Origin, false)
	}
}

// Validate checks the schema: plain names, no reserved or duplicate one,
// known types, and at least one field. Every error names its key
// (schema.fields[1].type).
func (s Schema) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if !validIdent(s.Table) {
		bad("schema.table", "%q is not a plain name (letters, digits, _)", s.Table)
	}
	if len(s.Fields) == 0 {
		bad("schema.fields", "no fields (at least one is required)")
	}
	seen := map[string]bool{"id": true}
	for i, f := range s.Fields {
		key := fmt.Sprintf("schema.fields[%d]", i)
		switch {
		case !validIdent(f.Name):
			bad(key+".name", "%q is not a plain name (letters, digits, _)", f.Name)
		case strings.HasPrefix(f.Name, "_"):
			bad(key+".name", "%q: names starting with _ are reserved", f.Name)
		case seen[f.Name]:
			bad(key+".name", "%q is a duplicate or reserved", f.Name)
		}
		seen[f.Name] = true
		if !slices.Contains(fieldTypes, f.Type) {
			bad(key+".type", "%q is not one of %s", f.Type, strings.Join(fieldTypes, ", "))
		}
		if f.MaxLength < 0 {
			bad(key+".max_length", "must not be negative")
		}
	}
	return errors.Join(errs...)
}

// validateReplication checks the replication section's clouds, table
// patterns and mappings.
func (c *Config) validateReplication(bad badFunc) {
	r := c.Replication
	c.checkCloud(bad, "replication.from", r.From)
	c.checkCloud(bad, "replication.to", r.To)
	if r.From != "" && r.From == r.To {
		bad("replication.to", "must differ from replication.from")
	}
	for i, t := range r.Tables {
		key := fmt.Sprintf("replication.tables[%d]", i)
		if rowfilter.IsPattern(t) {
			if err := rowfilter.CheckPattern(t); err != nil {
				bad(key, "%v", err)
			}
		} else if !validIdent(t) {
			bad(key, "%q is not a plain name or a pattern", t)
		}
	}
	for i, t := range r.Exclude {
		if err := rowfilter.CheckPattern(t); err != nil {
			bad(fmt.Sprintf("replication.exclude[%d]", i), "%v", err)
		}
	}
	onError := func(key, v string) {
		if v != "" && v != "stop" && v != "skip" {
			bad(key, "%q is neither \"stop\" nor \"skip\"", v)
		}
	}
	onError("replication.on_error", r.OnError)
	for t, v := range r.OnErrorTables {
		key := "replication.on_error_tables." + t
		if err := rowfilter.CheckPattern(t); err != nil {
			bad(key, "%v", err)
		}
		onError(key, v)
	}
	if r.LoadParallel < 0 {
		bad("replication.load_parallel", "must not be negative")
	}
	if r.Schema != "" && r.Schema != "tables" && r.Schema != "full" {
		bad("replication.schema", "%q is neither \"tables\" nor \"full\"", r.Schema)
	}
	if r.ValidateEvery.D() < 0 {
		bad("replication.validate_every", "must not be negative")
	}
	if r.Source != "" && r.Source != SourceLog && r.Source != SourcePoll {
		bad("replication.source", "%q is neither %q nor %q", r.Source, SourceLog, SourcePoll)
	}
	c.validateMappings(bad)
}

// validateMappings checks replication.mappings, naming the key at fault.
func (c *Config) validateMappings(bad badFunc) {
	for i, mp := range c.Replication.Mappings {
		key := fmt.Sprintf("replication.mappings[%d]", i)
		if mp.Table == "" {
			bad(key+".table", "a table name or pattern is required")
		} else if err := rowfilter.CheckPattern(mp.Table); err != nil {
			bad(key+".table", "%v", err)
		}
		if err := rowfilter.CheckRename(mp.Rename); err != nil {
			bad(key+".rename", "%v", err)
		}
		from := make([]string, 0, len(mp.Columns))
		for k := range mp.Columns {
			from = append(from, k)
		}
		sort.Strings(from)
		targets := map[string]string{}
		for _, k := range from {
			v := mp.Columns[k]
			switch {
			case !validIdent(k):
				bad(key+".columns", "%q is not a plain column name", k)
			case !validIdent(v):
				bad(key+".columns."+k, "%q is not a plain column name", v)
			case targets[v] != "":
				bad(key+".columns."+k, "%q is also the new name of %q", v, targets[v])
			}
			targets[v] = k
		}
		for j, col := range mp.ExcludeColumns {
			ck := fmt.Sprintf("%s.exclude_columns[%d]", key, j)
			switch {
			case !validIdent(col):
				bad(ck, "%q is not a plain column name", col)
			case mp.Columns[col] != "":
				bad(ck, "%q is also renamed in columns", col)
			}
		}
		typed := make([]string, 0, len(mp.Types))
		for k := range mp.Types {
			typed = append(typed, k)
		}
		sort.Strings(typed)
		for _, col := range typed {
			switch {
			case !validIdent(col):
				bad(key+".types", "%q is not a plain column name", col)
			case strings.TrimSpace(mp.Types[col]) == "":
				bad(key+".types."+col, "a type name is required")
			case slices.Contains(mp.ExcludeColumns, col):
				bad(key+".types."+col, "%q is also excluded", col)
			}
		}
		if mp.Filter != "" {
			if _, err := rowfilter.Parse(mp.Filter); err != nil {
				bad(key+".filter", "%v", err)
			}
		}
	}
}

// ListenOnFreePorts moves every listener (each cloud's API and origin,
// the edge, the front door, the log store and the console) to a free
// loopback port the system picks: for a whole topology in one process
// (demo, bench, tests) next to anything on the default ports.
func (c *Config) ListenOnFreePorts() {
	const free = "127.0.0.1:0"
	for _, cl := range c.Clouds {
		cl.API = free
		if cl.Origin != "" {
			cl.Origin = free
		}
	}
	c.Edge.Listen, c.FrontDoor.Listen, c.Logs.Listen, c.Console.Listen = free, free, free, free
}

// CloudNames returns the clouds' names, sorted.
func (c *Config) CloudNames() []string {
	names := make([]string, 0, len(c.Clouds))
	for n := range c.Clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *Config) checkCloud(bad badFunc, key, name string) {
	if _, ok := c.Clouds[name]; !ok {
		bad(key, "%q is not a cloud of this topology (have %s)", name, strings.Join(c.CloudNames(), ", "))
	}
}

func checkURL(bad badFunc, key, raw string, schemes []string) {
	u := parseURL(bad, key, raw)
	if u != nil && !slices.Contains(schemes, u.Scheme) {
		bad(key, "scheme %q is not one of %s", u.Scheme, strings.Join(schemes, ", "))
	}
}

// parseURL parses a required URL; nil when it is missing or malformed.
func parseURL(bad badFunc, key, raw string) *url.URL {
	if raw == "" {
		bad(key, "a URL is required")
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		bad(key, "not a URL: %v", redact.URLError(err))
		return nil
	}
	return u
}

// checkDriverURL checks a URL whose scheme names a driver of kind: it is
// accepted iff this binary registered a driver for the scheme.
func checkDriverURL(bad badFunc, key, raw, kind string) {
	u := parseURL(bad, key, raw)
	if u == nil {
		return
	}
	var ue *registry.UnknownError
	if err := registry.Check(kind, u.Scheme); errors.As(err, &ue) {
		if len(ue.Known) == 0 {
			bad(key, "scheme %q: this binary has no %s driver", u.Scheme, kind)
			return
		}
		bad(key, "scheme %q is not one of %s (the %s drivers of this binary)", u.Scheme, strings.Join(ue.Known, ", "), kind)
	}
}

func checkAddr(bad badFunc, key, addr string, required bool) {
	if addr == "" {
		if required {
			bad(key, "a listen address (host:port) is required")
		}
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		bad(key, "%q is not host:port", addr)
	}
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// isListener reports whether name names an endpoint of the topology.
func (c *Config) isListener(name string) bool {
	switch name {
	case "frontdoor", "edge", "logs":
		return true
	}
	for cloud, cc := range c.Clouds {
		if name == cloud+"-api" || name == cloud+"-origin" && cc.Origin != "" {
			return true
		}
	}
	return false
}
