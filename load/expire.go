package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/intercloud/intercloud/objects"
)

// DefaultRawRetention is how long a loaded raw object is kept.
const DefaultRawRetention = 7 * 24 * time.Hour

// Expired says what one Expire pass did.
type Expired struct {
	// Objects and Bytes count the raw objects deleted.
	Objects int
	Bytes   int64
	// Kept counts the raw objects old enough that were kept because they
	// are not loaded (the reconciler still owes them a load).
	Kept int
}

// Expire deletes the raw objects written before cutoff that are loaded.
// An object not loaded yet is kept whatever its age (the reconciler loads
// it, or it is dead-lettered); dead letters (under dead/) are never
// touched. The loaded-objects table keeps the key, so a late redelivered
// event for a deleted object still finds it loaded and changes nothing.
//
// Only partitions whose hour ended before cutoff are listed, so a pass
// over a store that keeps a week costs one listing of each expired hour.
func (l *Loader) Expire(ctx context.Context, cutoff time.Time) (Expired, error) {
	var out Expired
	parts, err := l.partitions(ctx)
	if err != nil {
		return out, err
	}
	last := PartitionOf(cutoff)
	for _, p := range parts {
		if p >= last { // the hour of the cutoff and later
			break
		}
		var old []objects.Object
		if err := l.bucket.List(ctx, p, func(o objects.Object) error {
			if strings.HasSuffix(o.Key, ".ndjson") && o.ModTime.Before(cutoff) {
				old = append(old, o)
			}
			return nil
		}); err != nil {
			return out, fmt.Errorf("load: expire: %w", err)
		}
		if len(old) == 0 {
			continue
		}
		keys := make([]string, len(old))
		for i, o := range old {
			keys[i] = o.Key
		}
		loaded, err := l.loadedAmong(ctx, keys)
		if err != nil {
			return out, err
		}
		// An object is deleted only once its load lasts: a commit can
		// be visible before it is durable (sqldb.DB.WaitDurable).
		if err := l.db.WaitDurable(ctx); err != nil {
			return out, fmt.Errorf("load: expire: %w", err)
		}
		for _, o := range old {
			if !loaded[o.Key] {
				out.Kept++
				continue
			}
			if err := l.bucket.Delete(ctx, o.Key); err != nil && !errors.Is(err, objects.ErrNotFound) {
				return out, fmt.Errorf("load: expire: %w", err)
			}
			out.Objects++
			out.Bytes += o.Size
		}
	}
	return out, nil
}
