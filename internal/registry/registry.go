// Package registry is the one driver registry behind every pluggable
// concept of intercloud: object stores, databases and notification sources
// by URL scheme, replication sources by dialect name. A driver package
// registers itself in its init function (a duplicate name panics, like
// database/sql.Register), and a program links the drivers it ships by
// importing them.
//
// Each concept owns one Registry, made with New under the concept's kind
// ("objects", "sqldb", ...). The kinds are also listed here, so a package
// that must not import the concept (the topology file's parser) can still
// ask whether this binary has a driver for a name: a URL's scheme is
// accepted iff a driver registered it, and the error lists the ones that
// did.
package registry

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// ErrUnknown matches (errors.Is) the error for a name no driver registered.
var ErrUnknown = errors.New("registry: no driver registered")

// UnknownError is the error for a name no driver of a kind registered.
type UnknownError struct {
	// Kind is the registry's kind ("objects"), Key what names a driver
	// ("scheme"), Name the name asked for.
	Kind, Key, Name string
	// Known lists the names this binary registered, sorted.
	Known []string
}

// Error says what was asked for and what this binary has.
func (e *UnknownError) Error() string {
	have := "none registered in this binary"
	if len(e.Known) > 0 {
		have = "have " + strings.Join(e.Known, ", ")
	}
	return fmt.Sprintf("%s: no driver for %s %q (%s)", e.Kind, e.Key, e.Name, have)
}

// Is matches ErrUnknown.
func (e *UnknownError) Is(target error) bool { return target == ErrUnknown }

// Registry maps names to the drivers of one kind. It is safe for
// concurrent use; drivers register in init, before any lookup.
type Registry[D any] struct {
	kind, key string
	mu        sync.RWMutex
	drivers   map[string]D
}

// namer is what the directory keeps of a registry.
type namer interface{ Names() []string }

var (
	dirMu     sync.RWMutex
	directory = map[string]namer{}
	keys      = map[string]string{}
)

// New returns the registry of a kind, whose drivers are named by key
// ("scheme", "dialect"). It panics when the kind already has one: each
// concept owns exactly one registry.
func New[D any](kind, key string) *Registry[D] {
	if kind == "" || key == "" {
		panic("registry: New needs a kind and a key")
	}
	r := &Registry[D]{kind: kind, key: key, drivers: map[string]D{}}
	dirMu.Lock()
	defer dirMu.Unlock()
	if _, dup := directory[kind]; dup {
		panic("registry: New called twice for kind " + kind)
	}
	directory[kind] = r
	keys[kind] = key
	return r
}

// Kind returns the registry's kind.
func (r *Registry[D]) Kind() string { return r.kind }

// Register makes a driver available under name. It panics when the name is
// empty or taken, or the driver is nil.
func (r *Registry[D]) Register(name string, d D) {
	if name == "" {
		panic(fmt.Sprintf("registry: %s: Register with an empty %s", r.kind, r.key))
	}
	if isNil(d) {
		panic(fmt.Sprintf("registry: %s: Register with a nil driver for %s %q", r.kind, r.key, name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.drivers[name]; dup {
		panic(fmt.Sprintf("registry: %s: Register called twice for %s %q", r.kind, r.key, name))
	}
	r.drivers[name] = d
}

// Lookup returns the driver registered under name, or an *UnknownError
// (matching ErrUnknown) that lists the registered names.
func (r *Registry[D]) Lookup(name string) (D, error) {
	r.mu.RLock()
	d, ok := r.drivers[name]
	r.mu.RUnlock()
	if !ok {
		var zero D
		return zero, &UnknownError{Kind: r.kind, Key: r.key, Name: name, Known: r.Names()}
	}
	return d, nil
}

// Drivers returns the registered drivers in the order of their names.
func (r *Registry[D]) Drivers() []D {
	names := r.Names()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]D, len(names))
	for i, n := range names {
		out[i] = r.drivers[n]
	}
	return out
}

// Names lists the registered names, sorted.
func (r *Registry[D]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.drivers))
	for n := range r.drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Names lists the names registered under a kind, sorted; none when this
// binary does not link the kind's package at all.
func Names(kind string) []string {
	dirMu.RLock()
	r, ok := directory[kind]
	dirMu.RUnlock()
	if !ok {
		return nil
	}
	return r.Names()
}

// Check returns nil when a driver of the kind is registered under name,
// else an *UnknownError listing the names that are.
func Check(kind, name string) error {
	known := Names(kind)
	if slices.Contains(known, name) {
		return nil
	}
	dirMu.RLock()
	key := keys[kind]
	dirMu.RUnlock()
	if key == "" {
		key = "name"
	}
	return &UnknownError{Kind: kind, Key: key, Name: name, Known: known}
}

// isNil reports whether d is a nil interface, pointer, func, map, slice or
// channel.
func isNil(d any) bool {
	if d == nil {
		return true
	}
	switch v := reflect.ValueOf(d); v.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
