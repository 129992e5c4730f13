package objects

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// statusErr is an SDK error with an HTTP status, as smithy's ResponseError.
type statusErr int

func (e statusErr) Error() string       { return fmt.Sprintf("http %d", int(e)) }
func (e statusErr) HTTPStatusCode() int { return int(e) }

func TestMapErrUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := net.DialTimeout("tcp", addr, time.Second)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{statusErr(503), true},
		{statusErr(500), true},
		{statusErr(429), true},
		{statusErr(408), true},
		{statusErr(403), false},
		{statusErr(400), false},
		{fmt.Errorf("send: %w", refused), true},
		{errors.New("malformed answer"), false},
	} {
		got := errors.Is(mapErr(tc.err), ErrUnavailable)
		if got != tc.want {
			t.Errorf("mapErr(%v) unavailable = %v, want %v", tc.err, got, tc.want)
		}
	}
}
