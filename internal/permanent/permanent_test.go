package permanent

import (
	"errors"
	"fmt"
	"testing"
)

func TestMark(t *testing.T) {
	cause := errors.New("slot gone")
	err := Mark(cause)
	if err.Error() != "slot gone" || !errors.Is(err, cause) || !errors.Is(err, Err) || !Is(err) {
		t.Fatalf("Mark(%v) = %v", cause, err)
	}
	if wrapped := fmt.Errorf("stream s: %w", err); !Is(wrapped) || !errors.Is(wrapped, cause) {
		t.Fatal("a wrapped mark is not permanent")
	}
	if Mark(nil) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
	if Is(cause) || Is(nil) {
		t.Fatal("an unmarked error is permanent")
	}
	if !Is(fmt.Errorf("bad object: %w", Err)) {
		t.Fatal("an error wrapping Err is not permanent")
	}
}
