// Package lambda runs the load function as an AWS Lambda: an S3
// object-created notification invokes it, and it loads every raw object the
// event names with the same load.Loader that the in-process function host
// uses.
//
// A Lambda deployment is the binary of cmd/intercloud-lambda (or
// `intercloud function lambda load`), configured by the environment
// variables of package hosts (INTERCLOUD_OBJECTS_URL, INTERCLOUD_SQL_URL,
// optionally INTERCLOUD_CONFIG for the schema) plus the standard AWS
// variables (AWS_REGION, AWS_ACCESS_KEY_ID, ... which the Lambda runtime
// sets from the function's role). It runs the load function only.
//
// An invocation fails (and Lambda retries it) when any object failed with a
// transient error. An object that can never load (malformed) is moved under
// dead/ by the loader's dead letter and does not fail the invocation.
package lambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/intercloud/intercloud/hosts"
	"github.com/intercloud/intercloud/load"
)

// EnvRuntimeAPI is set by the Lambda runtime (and its emulator); its
// absence means the process does not run inside Lambda.
const EnvRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"

// ErrNotInLambda is returned by Start outside a Lambda environment.
var ErrNotInLambda = errors.New("lambda: not running in a Lambda environment (" + EnvRuntimeAPI + " is not set)")

// Handler loads the objects of S3 events.
type Handler struct {
	loader *load.Loader
	log    *slog.Logger
}

// NewHandler returns a Handler over a prepared Loader.
func NewHandler(l *load.Loader, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{loader: l, log: log.With("component", "lambda")}
}

// DecodeKey decodes an S3 notification's object key, which S3 sends
// URL-encoded with '+' for a space.
func DecodeKey(k string) (string, error) {
	d, err := url.QueryUnescape(k)
	if err != nil {
		return "", fmt.Errorf("lambda: malformed object key %q: %w", k, err)
	}
	return d, nil
}

// Handle loads every raw object an S3 event names. Records that are not
// object creations, or keys outside raw/, are skipped. It returns an error
// when some object failed and a retry may succeed.
func (h *Handler) Handle(ctx context.Context, ev events.S3Event) error {
	var errs []error
	for _, r := range ev.Records {
		if !strings.HasPrefix(r.EventName, "ObjectCreated:") && !strings.HasPrefix(r.EventName, "s3:ObjectCreated:") {
			h.log.DebugContext(ctx, "event skipped", "event", r.EventName)
			continue
		}
		key, err := DecodeKey(r.S3.Object.Key)
		if err != nil {
			h.log.ErrorContext(ctx, "event skipped", "err", err)
			continue
		}
		if !strings.HasPrefix(key, load.RawPrefix) {
			continue
		}
		if err := h.loadOne(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadOne loads one object, dead-lettering it when it can never load.
func (h *Handler) loadOne(ctx context.Context, key string) error {
	_, _, err := h.loader.LoadOrDeadLetter(ctx, key, "notification")
	if err != nil {
		h.log.WarnContext(ctx, "load failed; the invocation will be retried", "key", key, "err", err)
	}
	return err
}

// Open opens the store and database the environment names, prepares the
// tables and returns the handler with a function that closes both.
func Open(ctx context.Context, e hosts.Env, log *slog.Logger) (*Handler, func() error, error) {
	if log == nil {
		log = slog.Default()
	}
	s := e.Settings()
	s.Publish = nil // a Lambda runs the load function only
	s.Logger = func(c string) *slog.Logger { return log.With("component", c) }
	st, err := hosts.Open(ctx, s)
	if err != nil {
		return nil, nil, fmt.Errorf("lambda: %w", err)
	}
	return NewHandler(st.Loader, log), st.Close, nil
}

// Start reads the environment through getenv (os.Getenv when nil), opens
// the handler and serves Lambda invocations until the runtime stops the
// process. It returns only on a setup error (ErrNotInLambda outside Lambda).
func Start(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if getenv(EnvRuntimeAPI) == "" {
		return ErrNotInLambda
	}
	e, err := hosts.ReadEnv(getenv)
	if err != nil {
		return err
	}
	h, closeAll, err := Open(ctx, e, log)
	if err != nil {
		return err
	}
	defer closeAll()
	awslambda.StartWithOptions(h.Handle, awslambda.WithContext(ctx))
	return nil
}
