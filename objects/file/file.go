// Package file is the objects driver for a directory on local disk, the
// embedded default: file:///abs/dir. The directory is created if missing.
package file

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/intercloud/intercloud/objects"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "file"

func init() { objects.Register(Scheme, open) }

func open(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	return OpenBucket(u.Path)
}

// OpenBucket opens (creating if needed) a directory as a bucket.
func OpenBucket(dir string) (*blob.Bucket, error) {
	if dir == "" {
		return nil, fmt.Errorf("file: a directory path is required (file:///abs/dir)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true, DirFileMode: 0o700})
	if err != nil {
		return nil, fmt.Errorf("file: open %s: %w", dir, err)
	}
	return b, nil
}
