package sqlite

import (
	"errors"

	sqlite "modernc.org/sqlite"

	"github.com/intercloud/intercloud/sqldb"
)

var _ sqldb.ErrorClassifier = driver{}

// SQLite primary result codes (the low byte of an extended code).
const (
	codeBusy       = 5
	codeLocked     = 6
	codeNoMem      = 7
	codeIOErr      = 10
	codeFull       = 13
	codeCantOpen   = 14
	codeTooBig     = 18
	codeConstraint = 19
	codeMismatch   = 20
	codeRange      = 25
)

func primaryCode(err error) (int, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Code() & 0xff, true
}

// Unavailable implements sqldb.ErrorClassifier: the database is busy or
// locked by another connection, out of memory or disk, or its file cannot
// be opened or read now.
func (driver) Unavailable(err error) bool {
	code, ok := primaryCode(err)
	if !ok {
		return false
	}
	switch code {
	case codeBusy, codeLocked, codeNoMem, codeIOErr, codeFull, codeCantOpen:
		return true
	}
	return false
}

// Rejected implements sqldb.ErrorClassifier: a constraint failed, a value
// is too big, of the wrong type, or a parameter out of range.
func (driver) Rejected(err error) bool {
	code, ok := primaryCode(err)
	if !ok {
		return false
	}
	switch code {
	case codeConstraint, codeTooBig, codeMismatch, codeRange:
		return true
	}
	return false
}
