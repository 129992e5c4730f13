package functions_test

import (
	"errors"
	"testing"

	"github.com/intercloud/intercloud/functions"
	"github.com/intercloud/intercloud/replicate"
)

// One kind of permanent error: what replication marks permanent, the
// function host dead-letters at once, and the other way round.
func TestOnePermanentError(t *testing.T) {
	if !errors.Is(replicate.Permanent(errors.New("x")), functions.ErrPermanent) {
		t.Fatal("replicate.Permanent is not functions.ErrPermanent")
	}
	if !errors.Is(functions.ErrPermanent, replicate.ErrPermanent) {
		t.Fatal("functions.ErrPermanent is not replicate.ErrPermanent")
	}
}
