package topology

import (
	"net/http"

	"github.com/intercloud/intercloud/telemetry"
)

// consoleHandler serves the console: GET /v1/status and GET /metrics of
// the global parts (front door, edge).
func (t *Topology) consoleHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", t.globalStatusHandler)
	mux.Handle("GET /metrics", telemetry.MetricsHandler(t.registry))
	return mux
}
