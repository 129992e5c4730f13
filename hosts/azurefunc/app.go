package azurefunc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/intercloud/intercloud/hosts"
)

// AppOptions say how WriteApp declares the function app.
type AppOptions struct {
	// Executable is the custom handler's executable, relative to the app
	// directory (default "intercloud").
	Executable string
	// Arguments start the handler (default: function azure serve).
	Arguments []string
	// Queue is the Storage Queue that Event Grid writes BlobCreated events
	// to (default "blob-created").
	Queue string
	// Connection names the app setting holding the queue's storage
	// connection (default "AzureWebJobsStorage").
	Connection string
	// Schedule is the publish timer's NCRONTAB (default every minute).
	Schedule string
	// MaxDequeueCount is how often a queue message is tried before it
	// goes to the poison queue (default 5).
	MaxDequeueCount int
}

func (o *AppOptions) fill() {
	if o.Executable == "" {
		o.Executable = "intercloud"
	}
	if o.Arguments == nil {
		o.Arguments = []string{"function", "azure", "serve"}
	}
	if o.Queue == "" {
		o.Queue = "blob-created"
	}
	if o.Connection == "" {
		o.Connection = "AzureWebJobsStorage"
	}
	if o.Schedule == "" {
		o.Schedule = "0 */1 * * * *"
	}
	if o.MaxDequeueCount <= 0 {
		o.MaxDequeueCount = 5
	}
}

// AppFiles returns the files of the function app: host.json and one
// function.json per function, by path relative to the app directory.
func AppFiles(o AppOptions) (map[string][]byte, error) {
	o.fill()
	type binding struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Direction  string `json:"direction"`
		QueueName  string `json:"queueName,omitempty"`
		Connection string `json:"connection,omitempty"`
		Schedule   string `json:"schedule,omitempty"`
	}
	type function struct {
		Bindings []binding `json:"bindings"`
	}
	host := map[string]any{
		"version": "2.0",
		"extensionBundle": map[string]any{
			"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)",
		},
		"customHandler": map[string]any{
			"description": map[string]any{
				"defaultExecutablePath": o.Executable,
				"workingDirectory":      "",
				"arguments":             o.Arguments,
			},
			"enableForwardingHttpRequest": false,
		},
		"extensions": map[string]any{
			"queues": map[string]any{"maxDequeueCount": o.MaxDequeueCount, "messageEncoding": "base64"},
		},
	}
	files := map[string]any{
		"host.json": host,
		LoadFunction + "/function.json": function{Bindings: []binding{{
			Name: QueueBinding, Type: "queueTrigger", Direction: "in", QueueName: o.Queue, Connection: o.Connection,
		}}},
		PublishFunction + "/function.json": function{Bindings: []binding{{
			Name: TimerBinding, Type: "timerTrigger", Direction: "in", Schedule: o.Schedule,
		}}},
	}
	out := map[string][]byte{}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("azurefunc: %s: %w", name, err)
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// WriteApp writes the function app's files into dir (created if needed).
func WriteApp(dir string, o AppOptions) error {
	files, err := AppFiles(o)
	if err != nil {
		return err
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("azurefunc: %w", err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("azurefunc: %w", err)
		}
	}
	return nil
}

// Open builds the handler from the environment (the function app's
// settings, see package hosts): it opens the store and the database,
// prepares the tables, and returns a function closing both. The publish
// function is served unless INTERCLOUD_PUBLISH is "false".
func Open(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Handler, func() error, error) {
	if log == nil {
		log = slog.Default()
	}
	e, err := hosts.ReadEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	s := e.Settings()
	s.Logger = func(c string) *slog.Logger { return log.With("component", c) }
	st, err := hosts.Open(ctx, s)
	if err != nil {
		return nil, nil, fmt.Errorf("azurefunc: %w", err)
	}
	h, err := New(Config{Loader: st.Loader, Publisher: st.Publisher, Container: e.Container, Logger: log})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return h, st.Close, nil
}
