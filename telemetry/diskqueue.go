package telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// diskQueue is the Shipper's disk-backed buffer: lines are appended to
// segment files in a directory and read back oldest first; a cursor file
// says how far the sink has taken them, so lines survive a sink outage
// and a restart of the process, and a delivered line is not read again.
// Segments wholly delivered are deleted. Safe for one writer side and one
// reader side at once.
type diskQueue struct {
	id       string // names the queue in batch keys; kept in the directory
	dir      string
	maxBytes int64 // bound of the undelivered bytes on disk
	segBytes int64 // a segment is closed past this size

	mu    sync.Mutex
	segs  []*segment // oldest first; the last one is being written
	w     *os.File
	next  uint64 // seq of the next segment
	roff  int64  // read offset in segs[0]
	lines int    // undelivered lines
	bytes int64  // undelivered bytes
}

type segment struct {
	seq  uint64
	size int64
}

// cursor is what the cursor file holds: the oldest segment not wholly
// delivered and how far into it.
type cursor struct {
	Seq    uint64 `json:"seq"`
	Offset int64  `json:"offset"`
}

const (
	segSuffix  = ".seg"
	cursorFile = "cursor.json"
)

// openDiskQueue opens (making it if need be) the queue in dir, finding
// the lines a previous run left undelivered.
func openDiskQueue(dir string, maxBytes, segBytes int64) (*diskQueue, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("telemetry: log buffer: %w", err)
	}
	q := &diskQueue{dir: dir, maxBytes: maxBytes, segBytes: segBytes}
	idPath := filepath.Join(dir, "id")
	if b, err := os.ReadFile(idPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
		q.id = string(bytes.TrimSpace(b))
	} else {
		q.id = NewTraceID()
		if err := os.WriteFile(idPath, []byte(q.id+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("telemetry: log buffer: %w", err)
		}
	}
	var cur cursor
	if b, err := os.ReadFile(filepath.Join(dir, cursorFile)); err == nil {
		_ = json.Unmarshal(b, &cur)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("telemetry: log buffer: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err == nil {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		path := q.path(seq)
		if seq < cur.Seq {
			_ = os.Remove(path) // delivered before the last stop
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("telemetry: log buffer: %w", err)
		}
		off := int64(0)
		if seq == cur.Seq {
			off = min(cur.Offset, fi.Size())
		}
		// A line cut by a crash has no newline: it is dropped.
		n, complete, err := countLines(path, off)
		if err != nil {
			return nil, fmt.Errorf("telemetry: log buffer: %w", err)
		}
		if complete < fi.Size() {
			if err := os.Truncate(path, complete); err != nil {
				return nil, fmt.Errorf("telemetry: log buffer: %w", err)
			}
		}
		if len(q.segs) == 0 {
			q.roff = off
		}
		q.segs = append(q.segs, &segment{seq: seq, size: complete})
		q.lines += n
		q.bytes += complete - off
		q.next = seq + 1
	}
	if err := q.rotate(); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *diskQueue) path(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d%s", seq, segSuffix))
}

// countLines counts the whole lines of a file from off and returns where
// the last one ends.
func countLines(path string, off int64) (n int, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, 0, err
	}
	end = off
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return n, end, nil
		}
		n++
		end += int64(len(line))
	}
}

// rotate closes the segment being written and starts a new one; called
// with mu held (or before the queue is shared).
func (q *diskQueue) rotate() error {
	if q.w != nil {
		if err := q.w.Close(); err != nil {
			return fmt.Errorf("telemetry: log buffer: %w", err)
		}
	}
	seq := q.next
	f, err := os.OpenFile(q.path(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("telemetry: log buffer: %w", err)
	}
	q.w = f
	q.next++
	q.segs = append(q.segs, &segment{seq: seq})
	if len(q.segs) == 1 {
		q.roff = 0
	}
	return nil
}

// append writes lines at the end of the queue; the lines that would pass
// maxBytes are dropped and counted.
func (q *diskQueue) append(entries [][]byte) (dropped int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var buf bytes.Buffer
	n := 0
	for _, e := range entries {
		size := int64(len(e) + 1)
		if q.bytes+int64(buf.Len())+size > q.maxBytes {
			break
		}
		buf.Write(e)
		buf.WriteByte('\n')
		n++
	}
	dropped = len(entries) - n
	if n == 0 {
		return dropped, nil
	}
	if _, err := q.w.Write(buf.Bytes()); err != nil {
		return len(entries), fmt.Errorf("telemetry: log buffer: %w", err)
	}
	last := q.segs[len(q.segs)-1]
	last.size += int64(buf.Len())
	q.lines += n
	q.bytes += int64(buf.Len())
	if last.size >= q.segBytes {
		if err := q.rotate(); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

// peek returns up to n of the oldest undelivered lines, how many bytes
// of the oldest segment they take (for advance) and a key naming them: the
// same lines always get the same key, across restarts too.
func (q *diskQueue) peek(n int) ([][]byte, int64, string, error) {
	q.mu.Lock()
	if len(q.segs) == 0 || q.lines == 0 {
		q.mu.Unlock()
		return nil, 0, "", nil
	}
	seg, off := *q.segs[0], q.roff
	q.mu.Unlock()
	if off >= seg.size {
		return nil, 0, "", nil
	}
	key := fmt.Sprintf("%s:%d:%d", q.id, seg.seq, off)
	f, err := os.Open(q.path(seg.seq))
	if err != nil {
		return nil, 0, "", fmt.Errorf("telemetry: log buffer: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, seg.size-off), 64<<10)
	var out [][]byte
	var used int64
	for len(out) < n {
		line, err := r.ReadBytes('\n')
		if err != nil {
			break
		}
		used += int64(len(line))
		out = append(out, line[:len(line)-1])
	}
	return out, used, key, nil
}

// advance marks the n lines (used bytes) peek returned as delivered,
// deletes the segments wholly delivered and saves the cursor.
func (q *diskQueue) advance(n int, used int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.roff += used
	q.lines -= n
	q.bytes -= used
	for len(q.segs) > 1 && q.roff >= q.segs[0].size {
		_ = os.Remove(q.path(q.segs[0].seq))
		q.segs = q.segs[1:]
		q.roff = 0
	}
	b, _ := json.Marshal(cursor{Seq: q.segs[0].seq, Offset: q.roff})
	tmp := filepath.Join(q.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("telemetry: log buffer: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(q.dir, cursorFile)); err != nil {
		return fmt.Errorf("telemetry: log buffer: %w", err)
	}
	return nil
}

// len returns the undelivered lines.
func (q *diskQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lines
}

// close closes the segment being written.
func (q *diskQueue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.w == nil {
		return nil
	}
	err := q.w.Close()
	q.w = nil
	return errors.Join(err)
}
