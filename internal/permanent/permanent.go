// Package permanent is the one error kind for failures that no retry can
// fix: a malformed object, a change the target cannot follow, a position
// the source's log no longer holds, a configuration error. Retrying parts
// (the function host, a replication stream) stop retrying such an error:
// the host dead-letters the event, the stream stops and says why.
//
// The functions and replicate packages export the same value as
// functions.ErrPermanent and replicate.ErrPermanent, so an error marked
// anywhere is permanent everywhere.
package permanent

import "errors"

// Err matches (errors.Is) every permanent error. Wrap it
// (fmt.Errorf("...: %w", permanent.Err)) or use Mark.
var Err = errors.New("permanent failure")

// Mark returns an error with err's text that matches both err and Err with
// errors.Is; Mark(nil) is nil.
func Mark(err error) error {
	if err == nil {
		return nil
	}
	return &marked{err}
}

// Is reports whether err is permanent.
func Is(err error) bool { return errors.Is(err, Err) }

// marked is an error marked permanent without a change of its text.
type marked struct{ err error }

func (e *marked) Error() string        { return e.err.Error() }
func (e *marked) Unwrap() error        { return e.err }
func (e *marked) Is(target error) bool { return target == Err }
