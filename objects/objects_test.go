package objects_test

import (
	"errors"
	"testing"

	"github.com/intercloud/intercloud/internal/registry"
	"github.com/intercloud/intercloud/objects"
	_ "github.com/intercloud/intercloud/objects/file"
)

func TestOpenUnknownScheme(t *testing.T) {
	_, err := objects.Open(t.Context(), "gs://bucket", nil)
	if !errors.Is(err, registry.ErrUnknown) || err.Error() != `objects: no driver for scheme "gs" (have file)` {
		t.Fatalf("Open(gs://) = %v", err)
	}
}
