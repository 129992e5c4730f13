// Package hosts builds what every function host of a cloud runs — the
// cloud's object store and database, the load function and, where the
// cloud publishes, the publish function — from one set of settings, and
// reads those settings from one set of environment variables. Its callers
// are the in-process host (package topology), the AWS Lambda adapter
// (hosts/lambda) and the Azure Functions custom handler (hosts/azurefunc).
//
// The function contract itself (triggers, retries, dead letters, the
// reconciler) is package functions; the adapters here only map a cloud's
// invocations onto load.Loader and publish.Publisher.
//
// # Environment
//
// A function deployed on a cloud's function service is configured by its
// environment (the Lambda's variables, the function app's settings):
//
//	INTERCLOUD_OBJECTS_URL  required: the object store, e.g. s3://ingest?region=eu-west-1 or azblob://results?...
//	INTERCLOUD_SQL_URL      required: the database, e.g. mysql://app:secret@host:3306/app
//	INTERCLOUD_CONFIG       optional: a topology file path, or inline YAML, for the schema and the publish settings
//	                        (empty: the embedded default)
//	INTERCLOUD_PUBLISH      optional: "false" runs the load function only (Azure; the Lambda always does)
//	INTERCLOUD_CONTAINER    optional: the container Event Grid events are matched against
//	                        (Azure; default: the container of the azblob:// objects URL)
//
// plus each cloud's own variables for its SDKs (AWS_REGION, the Lambda
// role's credentials, FUNCTIONS_CUSTOMHANDLER_PORT, ...).
package hosts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/publish"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/sqldb"
)

// The environment variables ReadEnv reads.
const (
	EnvObjectsURL = "INTERCLOUD_OBJECTS_URL"
	EnvSQLURL     = "INTERCLOUD_SQL_URL"
	EnvConfig     = "INTERCLOUD_CONFIG"
	EnvPublish    = "INTERCLOUD_PUBLISH"
	EnvContainer  = "INTERCLOUD_CONTAINER"
)

// Settings say what Open builds.
type Settings struct {
	// ObjectsURL and SQLURL name the cloud's object store and database;
	// both are required.
	ObjectsURL, SQLURL string
	// Schema is the record schema of the load and publish functions.
	Schema config.Schema
	// Publish, when set, also builds the publish function with these
	// settings (see publish.Config.Settings); nil builds load only.
	Publish *config.Publish
	// Poll is how often the publisher polls an idle change feed (0:
	// publish's default).
	Poll time.Duration
	// Source is the topology's replication.source: how the publisher
	// reads the database's changes ("": the database's log where this
	// binary has a log source for it, poll otherwise; see
	// config.Replication.SourceMode).
	Source string
	// Purge, OnPublished and PublishFence are the publisher's Purge,
	// OnPublished and Fence; OnFresh and OnTraces its (see publish.Config).
	Purge        func(ctx context.Context, paths, tags []string) error
	OnPublished  func(ids []string)
	PublishFence func(ctx context.Context, tx *sql.Tx) error
	OnFresh      func(ages []time.Duration)
	OnTraces     func(traces []string, t publish.Trace)
	// Logger returns the logger of a component ("objects", "sql", "load",
	// "publish"); nil means slog.Default() with a "component" attribute.
	Logger func(component string) *slog.Logger
}

func (s Settings) logger(component string) *slog.Logger {
	if s.Logger != nil {
		return s.Logger(component)
	}
	return slog.Default().With("component", component)
}

// Stack is a cloud's open function stack: its store, its database, and the
// functions over them, their tables prepared.
type Stack struct {
	Bucket *objects.Bucket
	DB     *sqldb.DB
	Loader *load.Loader
	// Publisher is nil unless Settings.Publish was set.
	Publisher *publish.Publisher
}

// Open opens the store and the database, builds the loader (and the
// publisher) and prepares their tables. On error, whatever was opened is
// closed again. The errors are those of the parts (objects:, sqldb:,
// load:, publish:).
func Open(ctx context.Context, s Settings) (st *Stack, err error) {
	if s.ObjectsURL == "" || s.SQLURL == "" {
		return nil, errors.New("hosts: an objects URL and a SQL URL are required")
	}
	st = &Stack{}
	defer func() {
		if err != nil {
			_ = st.Close()
			st = nil
		}
	}()
	if st.Bucket, err = objects.Open(ctx, s.ObjectsURL, s.logger("objects")); err != nil {
		return st, err
	}
	if st.DB, err = sqldb.Open(ctx, s.SQLURL, s.logger("sql")); err != nil {
		return st, err
	}
	st.Loader = load.New(st.Bucket, st.DB, s.Schema, s.logger("load"))
	if err := st.Loader.Prepare(ctx); err != nil {
		return st, err
	}
	if s.Publish == nil {
		return st, nil
	}
	st.Publisher, err = publish.New(publish.Config{
		DB: st.DB, Bucket: st.Bucket, Schema: s.Schema, Settings: *s.Publish, Poll: s.Poll,
		SourceMode: config.Replication{Source: s.Source}.SourceMode(replicate.HasLogSource(st.DB.Dialect.Name())),
		Purge:      s.Purge, OnPublished: s.OnPublished, Fence: s.PublishFence, OnFresh: s.OnFresh, OnTraces: s.OnTraces, Logger: s.logger("publish"),
	})
	if err != nil {
		return st, err
	}
	return st, st.Publisher.Prepare(ctx)
}

// Close closes the database and the store; safe after a failed Open.
func (st *Stack) Close() error {
	var errs []error
	if st.DB != nil {
		errs = append(errs, st.DB.Close())
	}
	if st.Bucket != nil {
		errs = append(errs, st.Bucket.Close())
	}
	return errors.Join(errs...)
}

// Env is a function host's configuration, read from its environment.
type Env struct {
	ObjectsURL, SQLURL string
	// Config is the topology INTERCLOUD_CONFIG names (the embedded default
	// when it is empty).
	Config *config.Config
	// Publish is false when INTERCLOUD_PUBLISH is "false".
	Publish bool
	// Container is INTERCLOUD_CONTAINER, else the host of the objects URL
	// (the container of an azblob:// URL).
	Container string
}

// ReadEnv reads the variables above through getenv (os.Getenv when nil).
func ReadEnv(getenv func(string) string) (Env, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	e := Env{ObjectsURL: getenv(EnvObjectsURL), SQLURL: getenv(EnvSQLURL), Publish: getenv(EnvPublish) != "false",
		Container: getenv(EnvContainer)}
	if e.ObjectsURL == "" || e.SQLURL == "" {
		return e, fmt.Errorf("hosts: %s and %s are required", EnvObjectsURL, EnvSQLURL)
	}
	cfg, err := config.LoadValue(getenv(EnvConfig), os.TempDir())
	if err != nil {
		return e, fmt.Errorf("hosts: %s: %w", EnvConfig, err)
	}
	e.Config = cfg
	if e.Container == "" {
		if u, err := url.Parse(e.ObjectsURL); err == nil {
			e.Container = u.Host
		}
	}
	return e, nil
}

// Settings returns the settings Open needs for this environment: the
// topology's schema, and its publish settings unless Publish is off.
func (e Env) Settings() Settings {
	if e.Config == nil {
		e.Config = config.Default("")
	}
	s := Settings{ObjectsURL: e.ObjectsURL, SQLURL: e.SQLURL, Schema: e.Config.Schema, Poll: e.Config.Replication.Poll.D(),
		Source: e.Config.Replication.Source}
	if e.Publish {
		p := e.Config.Publish
		s.Publish = &p
	}
	return s
}
