package topology

import "net/http"

// consoleHandler serves the console: GET /v1/status (the global parts).
func (t *Topology) consoleHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", t.globalStatusHandler)
	return mux
}
