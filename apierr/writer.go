package apierr

import "net/http"

// ResponseWriter records the status and byte count of a response for the
// access log and, once JSONErrors is set, turns the plain-text errors that
// http.ServeContent writes (416, 412, ...) into JSON error bodies.
type ResponseWriter struct {
	http.ResponseWriter
	// Status is the status written (200 until one is).
	Status int
	// Bytes counts the body bytes written.
	Bytes int64
	// JSONErrors makes the next error status write a JSON body instead of
	// the caller's.
	JSONErrors bool
	// Fallback is the error for an error status ServeContent chose that has
	// no better body (default: 500 internal).
	Fallback *Error
	wrote    bool
	discard  bool
}

// NewResponseWriter wraps w.
func NewResponseWriter(w http.ResponseWriter) *ResponseWriter {
	return &ResponseWriter{ResponseWriter: w, Status: http.StatusOK}
}

// contentHeaders are dropped from an error answer that replaces content.
var contentHeaders = []string{"ETag", "Last-Modified", "Cache-Control", "Content-Length", "Age", "Warning"}

// WriteHeader implements http.ResponseWriter.
func (w *ResponseWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.Status = code
	if w.JSONErrors && code >= 400 {
		w.JSONErrors = false
		w.discard = true
		for _, k := range contentHeaders {
			w.Header().Del(k)
		}
		inner := &ResponseWriter{ResponseWriter: w.ResponseWriter}
		Write(inner, w.errorFor(code))
		w.Bytes = inner.Bytes
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.Bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errorFor is the JSON error for a status http.ServeContent chose.
func (w *ResponseWriter) errorFor(code int) *Error {
	switch code {
	case http.StatusRequestedRangeNotSatisfiable:
		return New(code, "range_not_satisfiable", "the requested range is not satisfiable")
	case http.StatusPreconditionFailed:
		return New(code, "precondition_failed", "a precondition failed")
	}
	if w.Fallback != nil {
		return w.Fallback
	}
	return New(http.StatusInternalServerError, CodeInternal, "internal error")
}
