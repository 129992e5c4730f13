package notify

import (
	"context"
	"errors"
	"testing"

	"github.com/intercloud/intercloud/internal/registry"
	"github.com/intercloud/intercloud/objects"
)

func TestOpenUnknownScheme(t *testing.T) {
	cb := func(context.Context, objects.Event) error { return nil }
	_, err := Open(t.Context(), "sns://topic", cb, nil)
	if !errors.Is(err, registry.ErrUnknown) || err.Error() != `notify: no driver for scheme "sns" (have azqueue, sqs, webhook)` {
		t.Fatalf("Open(sns://) = %v", err)
	}
}
