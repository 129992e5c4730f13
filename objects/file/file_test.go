package file_test

import (
	"testing"

	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/file"
	"github.com/intercloud/intercloud/objects/objectstest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	objectstest.RunConformance(t, func(t *testing.T) *objects.Bucket {
		b, err := objects.Open(t.Context(), "file://"+dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestOpenBucket(t *testing.T) {
	if _, err := file.OpenBucket(""); err == nil {
		t.Error("empty directory accepted")
	}
	b, err := file.OpenBucket(t.TempDir() + "/new/sub")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
