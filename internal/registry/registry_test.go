package registry

import (
	"errors"
	"strings"
	"testing"
)

type opener func() string

func TestRegistry(t *testing.T) {
	r := New[opener]("test-kind", "scheme")
	if got := Names("test-kind"); len(got) != 0 {
		t.Fatalf("Names before Register = %v", got)
	}
	err := Check("test-kind", "file")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), `test-kind: no driver for scheme "file" (none registered in this binary)`) {
		t.Fatalf("Check on an empty registry = %v", err)
	}
	r.Register("s3", func() string { return "s3" })
	r.Register("file", func() string { return "file" })
	if got := strings.Join(r.Names(), ","); got != "file,s3" {
		t.Fatalf("Names = %s", got)
	}
	d, err := r.Lookup("file")
	if err != nil || d() != "file" {
		t.Fatalf("Lookup(file) = %v", err)
	}
	_, err = r.Lookup("ftp")
	var ue *UnknownError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnknown) || err.Error() != `test-kind: no driver for scheme "ftp" (have file, s3)` {
		t.Fatalf("Lookup(ftp) = %v", err)
	}
	if err := Check("test-kind", "s3"); err != nil {
		t.Fatalf("Check(s3) = %v", err)
	}
	if err := Check("not-linked", "x"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "none registered") {
		t.Fatalf("Check on a kind not linked = %v", err)
	}
	if Names("not-linked") != nil {
		t.Fatal("Names of a kind not linked is not empty")
	}
}

func TestRegisterPanics(t *testing.T) {
	r := New[opener]("panic-kind", "scheme")
	r.Register("a", func() string { return "" })
	for name, f := range map[string]func(){
		"duplicate name": func() { r.Register("a", func() string { return "" }) },
		"empty name":     func() { r.Register("", func() string { return "" }) },
		"nil driver":     func() { r.Register("b", nil) },
		"duplicate kind": func() { New[opener]("panic-kind", "scheme") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}
