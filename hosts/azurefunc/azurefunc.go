// Package azurefunc runs the Azure side's functions as an Azure Functions
// custom handler: an HTTP server on FUNCTIONS_CUSTOMHANDLER_PORT that the
// Functions host invokes with JSON payloads.
//
// Two functions are served, with the same code the in-process host runs:
//
//   - "load" (queue trigger): Event Grid delivers Microsoft.Storage.BlobCreated
//     events into a Storage Queue; each message names a blob, which is loaded
//     with load.Loader.Load (a malformed one is dead-lettered under dead/).
//   - "publish" (timer trigger): the load reconciler (raw objects not loaded
//     yet are loaded) and then one publish pass (publish.Publisher.Once).
//
// The host POSTs /<FunctionName> with {"Data": {binding: value},
// "Metadata": {...}} and reads {"Outputs": {...}, "Logs": [...],
// "ReturnValue": ...}. A non-2xx answer fails the invocation: the host
// retries a queue message, and moves it to the poison queue after
// maxDequeueCount tries. WriteApp writes the host.json and function.json
// files of such an app.
package azurefunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/internal/serve"
	"github.com/intercloud/intercloud/load"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/notify"
	"github.com/intercloud/intercloud/publish"
)

// Function and binding names, as WriteApp declares them.
const (
	LoadFunction    = "load"
	PublishFunction = "publish"
	// QueueBinding is the name of the load function's queue trigger.
	QueueBinding = "message"
	// TimerBinding is the name of the publish function's timer trigger.
	TimerBinding = "timer"
	// EnvPort is where the host says which port to listen on.
	EnvPort = "FUNCTIONS_CUSTOMHANDLER_PORT"
)

// maxPayload bounds an invocation request.
const maxPayload = 4 << 20

// Config configures a Handler.
type Config struct {
	// Loader loads raw objects; required.
	Loader *load.Loader
	// Publisher runs the publish pass of the timer function; nil runs the
	// load reconciler only.
	Publisher *publish.Publisher
	// Container is the blob container that Event Grid events name; events
	// for other containers are acknowledged and ignored.
	Container string
	Logger    *slog.Logger
}

// Handler is the custom handler's http.Handler.
type Handler struct {
	cfg Config
	log *slog.Logger
	// passMu serializes timer passes: one publish pass at a time.
	passMu sync.Mutex
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Loader == nil || cfg.Container == "" {
		return nil, errors.New("azurefunc: a loader and a container are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg, log: cfg.Logger.With("component", "azurefunc")}, nil
}

// Request is the host's invocation payload.
type Request struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// Response is the handler's answer to the host.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// ServeHTTP implements http.Handler: POST /load and POST /publish.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(r.URL.Path, "/")
	if name != LoadFunction && name != PublishFunction {
		h.answer(w, http.StatusNotFound, Response{Logs: []string{fmt.Sprintf("no function %q (have %s, %s)", name, LoadFunction, PublishFunction)}})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.answer(w, http.StatusMethodNotAllowed, Response{Logs: []string{"invoke with POST"}})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		h.answer(w, http.StatusRequestEntityTooLarge, Response{Logs: []string{"invocation payload too large or unreadable"}})
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		h.answer(w, http.StatusBadRequest, Response{Logs: []string{"malformed invocation payload: " + err.Error()}})
		return
	}
	var resp Response
	switch name {
	case LoadFunction:
		resp, err = h.invokeLoad(r.Context(), req)
	case PublishFunction:
		resp, err = h.invokePublish(r.Context())
	}
	if err != nil {
		resp.Logs = append(resp.Logs, err.Error())
		h.log.ErrorContext(r.Context(), "invocation failed", "function", name, "err", err)
		h.answer(w, http.StatusInternalServerError, resp)
		return
	}
	h.answer(w, http.StatusOK, resp)
}

func (h *Handler) answer(w http.ResponseWriter, status int, resp Response) {
	if resp.Outputs == nil {
		resp.Outputs = map[string]any{}
	}
	if resp.Logs == nil {
		resp.Logs = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

// QueueMessage returns the text of a queue trigger's binding value: the
// host passes it as a JSON string, or as the JSON value itself when the
// message is JSON.
func QueueMessage(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("no queue message in the payload")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return notify.DecodeQueueMessage(s), nil
	}
	return raw, nil
}

// invokeLoad loads every blob an Event Grid message names. A malformed
// message fails (the host's poison queue takes it after maxDequeueCount).
func (h *Handler) invokeLoad(ctx context.Context, req Request) (Response, error) {
	var resp Response
	msg, err := QueueMessage(req.Data[QueueBinding])
	if err != nil {
		return resp, fmt.Errorf("azurefunc: %s: %w", LoadFunction, err)
	}
	evs, err := notify.ParseEventGrid(msg, h.cfg.Container)
	if err != nil {
		return resp, fmt.Errorf("azurefunc: %s: %w", LoadFunction, err)
	}
	var errs []error
	loaded := 0
	for _, e := range evs {
		if !strings.HasPrefix(e.Key, load.RawPrefix) {
			continue
		}
		line, err := h.loadOne(ctx, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		loaded++
		resp.Logs = append(resp.Logs, line)
	}
	resp.ReturnValue = loaded
	return resp, errors.Join(errs...)
}

// loadOne loads one object, dead-lettering it when it can never load, and
// returns the line for the host's invocation log.
func (h *Handler) loadOne(ctx context.Context, e objects.Event) (string, error) {
	res, dead, err := h.cfg.Loader.LoadOrDeadLetter(ctx, e.Key, e.Source)
	switch {
	case err != nil:
		return "", err
	case dead:
		return "dead-lettered " + e.Key, nil
	case res.Skipped:
		return "already loaded " + e.Key, nil
	}
	return fmt.Sprintf("loaded %s: %d records, %d new", e.Key, res.Records, res.Inserted), nil
}

// invokePublish loads what the reconciler finds unloaded, then runs one
// publish pass.
func (h *Handler) invokePublish(ctx context.Context) (Response, error) {
	h.passMu.Lock()
	defer h.passMu.Unlock()
	var resp Response
	var keys []string
	if err := h.cfg.Loader.Pending(ctx, func(e functions.Event) { keys = append(keys, e.ID) }); err != nil {
		return resp, fmt.Errorf("azurefunc: reconcile: %w", err)
	}
	var errs []error
	for _, k := range keys {
		line, err := h.loadOne(ctx, objects.Event{Key: k, Source: "reconcile"})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Logs = append(resp.Logs, line)
	}
	if h.cfg.Publisher != nil {
		if err := h.cfg.Publisher.Once(ctx); err != nil {
			errs = append(errs, err)
		} else {
			resp.Logs = append(resp.Logs, "publish pass done")
		}
	}
	resp.ReturnValue = len(keys)
	return resp, errors.Join(errs...)
}

// Addr returns the address to listen on: 127.0.0.1 and the port the host
// gives in FUNCTIONS_CUSTOMHANDLER_PORT (8080 when unset).
func Addr(getenv func(string) string) string {
	port := getenv(EnvPort)
	if port == "" {
		port = "8080"
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Serve serves h on ln until ctx is cancelled, then finishes the
// invocations in flight.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv, ln := serve.HTTPServer(h, serve.Limits{}, nil, ln)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("azurefunc: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}
