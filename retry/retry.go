// Package retry is intercloud's one rule for failures: a failure because a
// dependency is unavailable or busy is transient and retried, with capped
// exponential backoff and jitter, for as long as it takes; only a failure
// that no retry can fix is permanent. The function host, publish and
// replication all follow it.
package retry

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/sqldb"
)

// Defaults of a zero Policy.
const (
	DefaultBase = 100 * time.Millisecond
	DefaultMax  = 30 * time.Second
)

// Policy is capped exponential backoff with jitter: the n-th retry waits
// between half and all of min(Max, Base·2ⁿ⁻¹), so that many failing
// callers do not retry in step. The zero value uses the defaults.
type Policy struct {
	// Base is the nominal delay before the first retry (default 100ms).
	Base time.Duration
	// Max caps the nominal delay (default 30s).
	Max time.Duration
}

// Cap returns the nominal delay before retry n (from 1), without jitter.
func (p Policy) Cap(n int) time.Duration {
	base, ceil := p.Base, p.Max
	if base <= 0 {
		base = DefaultBase
	}
	if ceil <= 0 {
		ceil = DefaultMax
	}
	if ceil < base {
		ceil = base
	}
	d := base
	for i := 1; i < n && d < ceil; i++ {
		d *= 2
	}
	return min(d, ceil)
}

// Delay returns how long to wait before retry n (from 1): a random
// duration in [Cap(n)/2, Cap(n)].
func (p Policy) Delay(n int) time.Duration {
	c := p.Cap(n)
	half := c / 2
	return half + rand.N(c-half+1)
}

// Sleep waits Delay(n), or until ctx is done (then it returns ctx's error).
func (p Policy) Sleep(ctx context.Context, n int) error {
	t := time.NewTimer(p.Delay(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Transient reports whether err says a dependency was unavailable or busy,
// so that the same call may succeed later: a connection refused, reset or
// cut mid-answer, a timeout, a database that is down, starting, shutting
// down, out of connections, or in a deadlock or lock wait timeout
// (sqldb.Unavailable, sqldb.Transient), an object store that throttles or
// answers 5xx (objects.ErrUnavailable). A cancelled context is not
// transient: the caller is stopping.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, objects.ErrUnavailable), sqldb.Unavailable(err), sqldb.Transient(err),
		errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	return false
}
