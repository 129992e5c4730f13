package edge

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxVariants bounds the stored responses of one URL (Vary variants).
const maxVariants = 16

// object is one stored response. Its meta is replaced (never changed) by
// a validation; its body lives in the memory tier, the disk tier or both.
type object struct {
	key  string // primary key
	id   string // from key and secondary key; names its files
	meta atomic.Pointer[meta]

	// Guarded by store.mu.
	mem       *memBody // body in the memory tier, nil if not there
	disk      bool     // body and meta in the disk tier
	memEl     *list.Element
	diskEl    *list.Element
	removed   bool
	persisted time.Time // when its meta was last written

	invalid      atomic.Bool  // must be validated before use (RFC 9111 §4.3.5)
	errUntil     atomic.Int64 // unix nanos: origins failed; serve stale until then
	revalidating atomic.Bool  // a background revalidation runs
	touched      atomic.Int64 // unix seconds of the last disk mtime refresh
	fast         atomic.Pointer[fastHead]
}

// store holds the objects: an index by primary key, a tag index, and two
// LRU-bounded tiers. It is safe for concurrent use.
type store struct {
	memMax, memObjMax, diskMax int64
	dir                        string // disk tier; "" for none
	log                        *slog.Logger

	mu        sync.Mutex
	index     map[string][]*object
	tags      map[string]map[*object]struct{}
	memLRU    *list.List // front = most recent
	diskLRU   *list.List
	memBytes  int64
	diskBytes int64
	dirty     map[*object]struct{} // updated metas not yet persisted

	evictions atomic.Int64
}

func newStore(memMax, memObjMax, diskMax int64, dir string, log *slog.Logger) *store {
	return &store{memMax: memMax, memObjMax: memObjMax, diskMax: diskMax, dir: dir, log: log,
		index: map[string][]*object{}, tags: map[string]map[*object]struct{}{}, dirty: map[*object]struct{}{},
		memLRU: list.New(), diskLRU: list.New()}
}

// variantID names the stored responses for one primary and secondary key.
func variantID(key, vary string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + vary))
	return hex.EncodeToString(sum[:12])
}

// newObjectID names one stored response: its variant and a random part,
// so a newer response never reuses the files an older one is being read
// from.
func newObjectID(key, vary string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return variantID(key, vary) + "-" + hex.EncodeToString(r[:])
}

func (s *store) bodyPath(id string) string { return filepath.Join(s.dir, id+".body") }
func (s *store) metaPath(id string) string { return filepath.Join(s.dir, id+".meta") }
func (s *store) tmpDir() string            { return filepath.Join(s.dir, "tmp") }

// stored is what a lookup hands out: a consistent view of an object.
type stored struct {
	obj  *object
	meta *meta
	mem  *memBody
	disk bool
}

// lookup returns the most recent stored response for key whose Vary
// matches req (RFC 9111 §4, §4.1), and marks it used.
func (s *store) lookup(key string, req http.Header) (stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *object
	var bm *meta
	for _, o := range s.index[key] {
		m := o.meta.Load()
		if !m.matches(req) {
			continue
		}
		if bm == nil || m.date.After(bm.date) || (m.date.Equal(bm.date) && m.RespTime.After(bm.RespTime)) {
			best, bm = o, m
		}
	}
	if best == nil {
		return stored{}, false
	}
	s.touchLocked(best)
	return stored{obj: best, meta: bm, mem: best.mem, disk: best.disk}, true
}

// lookupMemory returns the stored response for key when it is the only
// one, answers every request whatever its fields (no Vary) and its body
// is in the memory tier; it marks it used.
func (s *store) lookupMemory(key string) (stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.index[key]
	if len(vs) != 1 || vs[0].mem == nil {
		return stored{}, false
	}
	o := vs[0]
	m := o.meta.Load()
	if len(m.varyNames) > 0 || m.varyStar {
		return stored{}, false
	}
	s.touchLocked(o)
	return stored{obj: o, meta: m, mem: o.mem, disk: o.disk}, true
}

// touchLocked moves o to the front of the tiers' LRU lists. s.mu must be
// held.
func (s *store) touchLocked(o *object) {
	if o.memEl != nil {
		s.memLRU.MoveToFront(o.memEl)
	}
	if o.diskEl != nil {
		s.diskLRU.MoveToFront(o.diskEl)
	}
}

// variants returns the stored responses for key that match req.
func (s *store) variants(key string, req http.Header) []*object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*object
	for _, o := range s.index[key] {
		if o.meta.Load().matches(req) {
			out = append(out, o)
		}
	}
	return out
}

// open returns the body of a stored response: its memory copy, else its
// disk file (which the caller closes).
func (s *store) open(st stored) (body, func(), error) {
	if st.mem != nil {
		return st.mem, noClose, nil
	}
	if !st.disk {
		return nil, nil, fs.ErrNotExist
	}
	f, err := os.Open(s.bodyPath(st.obj.id))
	if err != nil {
		return nil, nil, err
	}
	if now := time.Now().Unix(); now-st.obj.touched.Load() > 60 {
		// Keep the file's mtime near its last use: the LRU order after a
		// restart.
		st.obj.touched.Store(now)
		_ = os.Chtimes(s.metaPath(st.obj.id), time.Time{}, time.Now())
	}
	return &fileBody{f: f, n: st.meta.Size}, func() { _ = f.Close() }, nil
}

func noClose() {}

// insert stores a complete response for the request whose header is req:
// it replaces the stored responses that req selected (RFC 9111 §4.1),
// keeps the body in memory when small enough, and in the disk tier (file
// already at its final path, meta written) when disk is true.
func (s *store) insert(id string, m *meta, req http.Header, mem []byte, disk bool) *object {
	o := &object{key: m.Key, id: id}
	m.setLength() // the body's length is known now
	o.meta.Store(m)
	if int64(len(mem)) > s.memObjMax || int64(len(mem)) != m.Size {
		mem = nil
	}
	if mem == nil && m.Size == 0 {
		mem = []byte{}
	}
	var drop []string
	s.mu.Lock()
	for _, old := range s.index[m.Key] {
		if om := old.meta.Load(); om.Vary == m.Vary || om.matches(req) {
			drop = append(drop, s.removeLocked(old, true)...)
		}
	}
	if vs := s.index[m.Key]; len(vs) >= maxVariants {
		drop = append(drop, s.removeLocked(vs[0], true)...)
	}
	s.index[m.Key] = append(s.index[m.Key], o)
	for _, t := range m.tags {
		set := s.tags[t]
		if set == nil {
			set = map[*object]struct{}{}
			s.tags[t] = set
		}
		set[o] = struct{}{}
	}
	if mem != nil {
		o.mem = &memBody{mem}
		o.memEl = s.memLRU.PushFront(o)
		s.memBytes += int64(len(mem)) + m.cacheBytes
	}
	if disk {
		// Its meta was written with the body: a refresh within
		// persistEvery waits for the next write.
		o.disk = true
		o.persisted = time.Now()
		o.diskEl = s.diskLRU.PushFront(o)
		s.diskBytes += m.Size
	}
	if mem == nil && !disk {
		s.removeLocked(o, true)
	}
	drop = append(drop, s.evictLocked()...)
	s.mu.Unlock()
	s.removeFiles(drop)
	return o
}

// update replaces the meta of a stored object after a validation or a
// HEAD, persisting it when the object is on disk.
func (s *store) update(o *object, m *meta) {
	s.mu.Lock()
	if o.removed {
		s.mu.Unlock()
		return
	}
	old := o.meta.Load()
	for _, t := range old.tags {
		if set := s.tags[t]; set != nil {
			delete(set, o)
			if len(set) == 0 {
				delete(s.tags, t)
			}
		}
	}
	for _, t := range m.tags {
		set := s.tags[t]
		if set == nil {
			set = map[*object]struct{}{}
			s.tags[t] = set
		}
		set[o] = struct{}{}
	}
	if o.mem != nil {
		s.memBytes += m.cacheBytes - old.cacheBytes
	}
	o.meta.Store(m)
	o.invalid.Store(false)
	o.errUntil.Store(0)
	if o.disk {
		// Persisted by the next flush: a crash before it only loses the
		// refresh, and the response is validated again.
		s.dirty[o] = struct{}{}
	}
	s.mu.Unlock()
}

// persistEvery bounds how often one object's refreshed meta is written:
// a response revalidated every second is not rewritten every second.
const persistEvery = time.Minute

// flush persists the metas updated since they were last written, those
// written less than persistEvery ago only when all is set.
func (s *store) flush(now time.Time, all bool) {
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return
	}
	var objs []*object
	for o := range s.dirty {
		if !o.disk || o.removed {
			delete(s.dirty, o)
			continue
		}
		if all || now.Sub(o.persisted) >= persistEvery {
			o.persisted = now
			objs = append(objs, o)
			delete(s.dirty, o)
		}
	}
	s.mu.Unlock()
	for _, o := range objs {
		if err := s.writeMeta(o.id, o.meta.Load()); err != nil {
			s.log.Warn("disk tier: write meta", "key", o.key, "err", err)
		}
	}
}

// removeLocked drops o from the index and the tiers and returns the files
// to delete (when files is set). s.mu must be held.
func (s *store) removeLocked(o *object, files bool) []string {
	if o.removed {
		return nil
	}
	o.removed = true
	vs := s.index[o.key]
	for i, v := range vs {
		if v == o {
			vs = append(vs[:i:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) == 0 {
		delete(s.index, o.key)
	} else {
		s.index[o.key] = vs
	}
	m := o.meta.Load()
	for _, t := range m.tags {
		if set := s.tags[t]; set != nil {
			delete(set, o)
			if len(set) == 0 {
				delete(s.tags, t)
			}
		}
	}
	if o.memEl != nil {
		s.memLRU.Remove(o.memEl)
		s.memBytes -= o.mem.size() + m.cacheBytes
		o.memEl, o.mem = nil, nil
	}
	var drop []string
	if o.diskEl != nil {
		s.diskLRU.Remove(o.diskEl)
		s.diskBytes -= m.Size
		o.diskEl, o.disk = nil, false
		if files {
			drop = append(drop, o.id)
		}
	}
	return drop
}

// evictLocked drops least recently used bodies beyond the tiers' bounds
// and returns the files to delete. s.mu must be held.
func (s *store) evictLocked() []string {
	var drop []string
	for s.memBytes > s.memMax && s.memLRU.Len() > 0 {
		o := s.memLRU.Back().Value.(*object)
		s.evictions.Add(1)
		if !o.disk {
			drop = append(drop, s.removeLocked(o, true)...)
			continue
		}
		s.memLRU.Remove(o.memEl)
		s.memBytes -= o.mem.size() + o.meta.Load().cacheBytes
		o.memEl, o.mem = nil, nil
	}
	for s.diskBytes > s.diskMax && s.diskLRU.Len() > 0 {
		o := s.diskLRU.Back().Value.(*object)
		s.evictions.Add(1)
		if o.mem == nil {
			drop = append(drop, s.removeLocked(o, true)...)
			continue
		}
		s.diskLRU.Remove(o.diskEl)
		s.diskBytes -= o.meta.Load().Size
		o.diskEl, o.disk = nil, false
		drop = append(drop, o.id)
	}
	return drop
}

func (s *store) removeFiles(ids []string) {
	for _, id := range ids {
		for _, p := range []string{s.metaPath(id), s.bodyPath(id)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("disk tier: remove", "file", p, "err", err)
			}
		}
	}
}

// remove drops the given objects.
func (s *store) remove(objs ...*object) int {
	var drop []string
	n := 0
	s.mu.Lock()
	for _, o := range objs {
		if !o.removed {
			n++
			drop = append(drop, s.removeLocked(o, true)...)
		}
	}
	s.mu.Unlock()
	s.removeFiles(drop)
	return n
}

// purge removes the objects whose path (the key without its query) is one
// of paths, starts with a prefix ending in "*", or that carry a tag.
func (s *store) purge(paths, tags []string) int {
	var victims []*object
	s.mu.Lock()
	exact := map[string]bool{}
	var prefixes []string
	for _, p := range paths {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			prefixes = append(prefixes, pre)
		} else {
			exact[p] = true
		}
	}
	if len(paths) > 0 {
		for k, vs := range s.index {
			path, _, _ := strings.Cut(k, "?")
			hit := exact[path]
			for _, pre := range prefixes {
				hit = hit || strings.HasPrefix(k, pre)
			}
			if hit {
				victims = append(victims, vs...)
			}
		}
	}
	for _, t := range tags {
		for o := range s.tags[t] {
			victims = append(victims, o)
		}
	}
	s.mu.Unlock()
	return s.remove(victims...)
}

// counts returns the number of objects and the bytes of each tier.
func (s *store) counts() (n int, mem, disk int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, vs := range s.index {
		n += len(vs)
	}
	return n, s.memBytes, s.diskBytes
}

// writeMeta persists m next to the body of id. A meta cut by a crash
// fails to load, and the response is dropped.
func (s *store) writeMeta(id string, m *meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(s.metaPath(id), b, 0o600)
}

// persist moves a complete body file into the disk tier under id and
// writes its meta. bodyFile is renamed; with bodyFile empty, mem is
// written instead.
func (s *store) persist(id string, m *meta, bodyFile string, mem []byte) error {
	if bodyFile == "" {
		f, err := os.CreateTemp(s.tmpDir(), "body-*")
		if err != nil {
			return err
		}
		_, err = f.Write(mem)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(f.Name())
			return err
		}
		bodyFile = f.Name()
	}
	if err := os.Rename(bodyFile, s.bodyPath(id)); err != nil {
		return err
	}
	return s.writeMeta(id, m)
}

// load opens the disk tier: it creates the directory, clears unfinished
// files and indexes the stored responses, least recently used last.
func (s *store) load(targeted []string, heuristicMax time.Duration) error {
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return fmt.Errorf("edge: disk tier: %w", err)
	}
	tmps, _ := os.ReadDir(s.tmpDir())
	for _, t := range tmps {
		_ = os.Remove(filepath.Join(s.tmpDir(), t.Name()))
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("edge: disk tier: %w", err)
	}
	type found struct {
		m     *meta
		id    string
		mtime time.Time
	}
	var all []found
	metas := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".meta")
		if !ok {
			continue
		}
		metas[id] = true
		m, mtime, err := s.readMeta(id)
		if err != nil {
			s.log.Warn("disk tier: dropping unreadable entry", "id", id, "err", err)
			s.removeFiles([]string{id})
			continue
		}
		m.derive(targeted, heuristicMax)
		all = append(all, found{m, id, mtime})
	}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".body"); ok && !metas[id] {
			_ = os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	// Of several responses for one variant (a crash between writing a new
	// one and removing the old), keep the newest.
	newest := map[string]found{}
	for _, f := range all {
		v := variantID(f.m.Key, f.m.Vary)
		if prev, ok := newest[v]; ok {
			if prev.m.RespTime.After(f.m.RespTime) {
				s.removeFiles([]string{f.id})
				continue
			}
			s.removeFiles([]string{prev.id})
		}
		newest[v] = f
	}
	s.mu.Lock()
	for _, f := range all {
		if newest[variantID(f.m.Key, f.m.Vary)].id != f.id {
			continue
		}
		o := &object{key: f.m.Key, id: f.id, disk: true}
		o.meta.Store(f.m)
		s.index[o.key] = append(s.index[o.key], o)
		for _, t := range f.m.tags {
			set := s.tags[t]
			if set == nil {
				set = map[*object]struct{}{}
				s.tags[t] = set
			}
			set[o] = struct{}{}
		}
		o.diskEl = s.diskLRU.PushFront(o)
		s.diskBytes += f.m.Size
	}
	drop := s.evictLocked()
	s.mu.Unlock()
	s.removeFiles(drop)
	return nil
}

func (s *store) readMeta(id string) (*meta, time.Time, error) {
	st, err := os.Stat(s.metaPath(id))
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := os.ReadFile(s.metaPath(id))
	if err != nil {
		return nil, time.Time{}, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, time.Time{}, err
	}
	if m.Key == "" || !strings.HasPrefix(id, variantID(m.Key, m.Vary)+"-") || m.Size < 0 {
		return nil, time.Time{}, errors.New("meta does not match its file")
	}
	bs, err := os.Stat(s.bodyPath(id))
	if err != nil {
		return nil, time.Time{}, err
	}
	if bs.Size() != m.Size {
		return nil, time.Time{}, fmt.Errorf("body has %d bytes, meta says %d", bs.Size(), m.Size)
	}
	return &m, st.ModTime(), nil
}
