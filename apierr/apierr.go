// Package apierr writes and reads intercloud's HTTP error bodies:
// {"error": {"code": "...", "message": "..."}} with the matching status.
package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Codes used across the APIs.
const (
	CodeMalformed       = "malformed"              // 400
	CodeUnauthenticated = "unauthenticated"        // 401
	CodeNotFound        = "not_found"              // 404
	CodeMethod          = "method_not_allowed"     // 405
	CodeTooLarge        = "too_large"              // 413
	CodeUnsupportedType = "unsupported_media_type" // 415
	CodeInvalid         = "invalid_record"         // 422
	CodeRateLimited     = "rate_limited"           // 429
	CodeInternal        = "internal"               // 500
	CodeBadGateway      = "bad_gateway"            // 502
	CodeUnavailable     = "unavailable"            // 503
)

// Error is an API error: an HTTP status, a stable code and a message for
// people.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// New returns an Error.
func New(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// Write sends err as the JSON error body. An error that is not an *Error
// becomes a 500 whose message does not leak internals.
func Write(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}

// Read decodes an error response; it returns nil for a 2xx/3xx response.
func Read(resp *http.Response) *Error {
	if resp.StatusCode < 400 {
		return nil
	}
	var body struct {
		Error *Error `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) != nil || body.Error == nil {
		return &Error{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode), Message: string(b)}
	}
	body.Error.Status = resp.StatusCode
	return body.Error
}
