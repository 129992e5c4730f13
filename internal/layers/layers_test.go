package layers

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// layerTable parses the "| layer | packages |" table of the architecture
// document: each package path with the rank of its layer (0 = top).
func layerTable(doc []byte) (ranks map[string]int, names []string, err error) {
	ranks = map[string]int{}
	in := false
	pkgRE := regexp.MustCompile("`([^`]+)`")
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "| layer | packages |"):
			in = true
			continue
		case !in:
			continue
		case strings.HasPrefix(line, "|---"):
			continue
		case !strings.HasPrefix(line, "|"):
			in = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 2 {
			return nil, nil, fmt.Errorf("row %q: want | layer | packages |", line)
		}
		rank := len(names)
		names = append(names, strings.TrimSpace(cells[0]))
		for _, m := range pkgRE.FindAllStringSubmatch(cells[1], -1) {
			if _, dup := ranks[m[1]]; dup {
				return nil, nil, fmt.Errorf("package %s is listed twice", m[1])
			}
			ranks[m[1]] = rank
		}
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("no | layer | packages | table")
	}
	return ranks, names, sc.Err()
}

// violations lists every package of graph (path → its imports within the
// module) that is in no layer, and every import that points up.
func violations(ranks map[string]int, names []string, graph map[string][]string) []string {
	var out []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, p := range pkgs {
		r, ok := ranks[p]
		if !ok {
			out = append(out, fmt.Sprintf("%s is in no layer of docs/architecture.md", p))
			continue
		}
		for _, imp := range graph[p] {
			ir, ok := ranks[imp]
			if ok && ir < r {
				out = append(out, fmt.Sprintf("%s (%s) imports %s (%s), a layer above it", p, names[r], imp, names[ir]))
			}
		}
	}
	var stale []string
	for p := range ranks {
		if _, ok := graph[p]; !ok {
			stale = append(stale, fmt.Sprintf("docs/architecture.md lists %s, which is not a package of the module", p))
		}
	}
	slices.Sort(stale)
	return append(out, stale...)
}

// moduleGraph runs go list in the module root and returns the module's
// packages with their (non-test) imports inside the module, by path
// relative to the module.
func moduleGraph(t *testing.T) (root string, graph map[string][]string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go list -m printed %q", out)
	}
	root, mod := f[0], f[1]
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	rel := func(p string) (string, bool) {
		if p == mod {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, mod+"/")
		return r, ok
	}
	graph = map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p, ok := rel(f[0])
		if !ok {
			continue
		}
		graph[p] = []string{}
		for _, imp := range f[1:] {
			if r, ok := rel(imp); ok {
				graph[p] = append(graph[p], r)
			}
		}
	}
	return root, graph
}

func TestImportsPointDown(t *testing.T) {
	root, graph := moduleGraph(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	ranks, names, err := layerTable(doc)
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	if len(graph) < 10 {
		t.Fatalf("go list found only %d packages", len(graph))
	}
	for _, v := range violations(ranks, names, graph) {
		t.Error(v)
	}
}

// The checker itself: an arrow up, a package in no layer and a stale name
// are each reported.
func TestViolations(t *testing.T) {
	doc := []byte("intro\n\n| layer | packages |\n|---|---|\n| top | `cmd/x` |\n| middle | `mid`, `mid/sub` |\n| base | `base`, `gone` |\n\nafter\n")
	ranks, names, err := layerTable(doc)
	if err != nil {
		t.Fatal(err)
	}
	if ranks["cmd/x"] != 0 || ranks["mid/sub"] != 1 || ranks["base"] != 2 || len(names) != 3 {
		t.Fatalf("table = %v %v", ranks, names)
	}
	graph := map[string][]string{
		"cmd/x":   {"mid", "base"},
		"mid":     {"mid/sub", "base"},
		"mid/sub": {},
		"base":    {"mid"}, // up
		"loose":   {},
	}
	got := strings.Join(violations(ranks, names, graph), "\n")
	for _, want := range []string{
		"base (base) imports mid (middle), a layer above it",
		"loose is in no layer",
		"lists gone, which is not a package",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cmd/x (top) imports") || strings.Contains(got, "mid (middle) imports") {
		t.Errorf("a downward or same-layer import was reported:\n%s", got)
	}
	if _, _, err := layerTable([]byte("| layer | packages |\n| a | `x` |\n| b | `x` |\n")); err == nil {
		t.Error("a package listed twice was accepted")
	}
}

// The README's layout table names every package of the module.
func TestReadmeListsEveryPackage(t *testing.T) {
	root, graph := moduleGraph(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	if i := strings.Index(layout, "\n## "); i >= 0 {
		layout = layout[:i]
	}
	for p := range graph {
		if !strings.Contains(layout, "`"+p+"`") {
			t.Errorf("README.md's layout table does not name `%s`", p)
		}
	}
}
