// Package deploy holds what runs intercloud on the clouds' own engines
// (docs/deploy.md): the container image's Dockerfile and the Kubernetes
// manifests. Its test parses them and checks what a cluster would only
// find out at the worst moment.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/intercloud/intercloud/config"
	_ "github.com/intercloud/intercloud/objects/azblob"
	_ "github.com/intercloud/intercloud/objects/s3"
	_ "github.com/intercloud/intercloud/sqldb/mysql"
	_ "github.com/intercloud/intercloud/sqldb/postgres"
)

// object is one Kubernetes object, as plain data.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// get walks maps by keys.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := asMap(v)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// asMap returns a YAML mapping (decoded as object or map[string]any).
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case object:
		return m, true
	case map[string]any:
		return m, true
	}
	return nil, false
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }
func num(v any, path ...string) int    { n, _ := get(v, path...).(int); return n }

func labels(v any, path ...string) map[string]string {
	out := map[string]string{}
	m, _ := asMap(get(v, path...))
	for k, x := range m {
		out[k], _ = x.(string)
	}
	return out
}

// selects reports whether a selector matches a set of labels.
func selects(sel, lbls map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// parse reads every YAML document of the manifests.
func parse(files map[string][]byte) ([]object, error) {
	var out []object
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		dec := yaml.NewDecoder(bytes.NewReader(files[n]))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
			if o == nil {
				continue
			}
			if o.kind() == "" || o.name() == "" || str(o, "apiVersion") == "" {
				return nil, fmt.Errorf("%s: an object without apiVersion, kind or metadata.name", n)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// check returns every problem of a set of manifests.
func check(objs []object) []error {
	var errs []error
	bad := func(o object, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s %s: %s", o.kind(), o.name(), fmt.Sprintf(format, a...)))
	}
	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.kind()] = append(byKind[o.kind()], o)
	}
	var secrets = map[string]object{}
	for _, s := range byKind["Secret"] {
		secrets[s.name()] = s
	}
	roles := map[string]bool{}
	for _, d := range byKind["Deployment"] {
		sel := labels(d, "spec", "selector", "matchLabels")
		tpl := labels(d, "spec", "template", "metadata", "labels")
		if !selects(sel, tpl) {
			bad(d, "selector %v does not match the pod labels %v", sel, tpl)
		}
		pod := get(d, "spec", "template", "spec")
		if get(pod, "securityContext", "runAsNonRoot") != true {
			bad(d, "pods must run as non-root (securityContext.runAsNonRoot)")
		}
		if u := num(pod, "securityContext", "runAsUser"); u == 0 {
			bad(d, "runAsUser must be a non-zero uid")
		}
		cs := list(pod, "containers")
		if len(cs) != 1 {
			bad(d, "%d containers, want 1", len(cs))
			continue
		}
		c := cs[0]
		if str(c, "image") == "" {
			bad(d, "no image")
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
			bad(d, "the container must have a read-only root filesystem and no privilege escalation")
		}
		memLimit := false
		for _, e := range list(c, "env") {
			memLimit = memLimit || str(e, "name") == "GOMEMLIMIT" && str(e, "valueFrom", "resourceFieldRef", "resource") == "limits.memory"
		}
		if !memLimit {
			bad(d, "GOMEMLIMIT must come from the container's memory limit (resourceFieldRef limits.memory)")
		}
		ports := map[string]int{}
		for _, p := range list(c, "ports") {
			ports[str(p, "name")] = num(p, "containerPort")
		}
		if str(c, "readinessProbe", "httpGet", "path") != "/healthz" {
			bad(d, "the readiness probe must be GET /healthz")
		}
		if p := str(c, "readinessProbe", "httpGet", "port"); ports[p] == 0 {
			bad(d, "the readiness probe's port %q is not a container port", p)
		}
		if get(c, "livenessProbe", "httpGet") != nil {
			bad(d, "the liveness probe must not be an HTTP health check: a database outage would restart every pod")
		}
		args := list(c, "args")
		var role, cfgPath string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--cloud":
				role, _ = args[i+1].(string)
			case "--config":
				cfgPath, _ = args[i+1].(string)
			}
		}
		if len(args) == 0 || args[0] != "up" || role == "" || cfgPath == "" {
			bad(d, "args %v: want up --cloud ROLE --config FILE", args)
			continue
		}
		roles[role] = true
		// The topology file comes from a mounted Secret key and is valid.
		cfgFile := readMounted(d, c, pod, cfgPath, secrets, bad)
		if cfgFile != nil {
			cfg, err := config.Parse(cfgFile, "")
			if err != nil {
				bad(d, "%s: %v", cfgPath, err)
			} else if err := checkRole(cfg, role, ports); err != nil {
				bad(d, "%s: %v", cfgPath, err)
			}
		}
		if role == "global" {
			continue
		}
		if n := num(d, "spec", "replicas"); n < 2 {
			bad(d, "%d replicas; a cloud's part runs at least 2", n)
		}
		var pdb object
		for _, p := range byKind["PodDisruptionBudget"] {
			if selects(labels(p, "spec", "selector", "matchLabels"), tpl) {
				pdb = p
			}
		}
		switch {
		case pdb == nil:
			bad(d, "no PodDisruptionBudget selects its pods")
		case num(pdb, "spec", "minAvailable") < 1 || num(pdb, "spec", "minAvailable") >= num(d, "spec", "replicas"):
			bad(pdb, "minAvailable must be at least 1 and below the replicas (%d)", num(d, "spec", "replicas"))
		}
		var svc object
		for _, s := range byKind["Service"] {
			if selects(labels(s, "spec", "selector"), tpl) {
				svc = s
			}
		}
		if svc == nil {
			bad(d, "no Service selects its pods")
			continue
		}
		for _, p := range list(svc, "spec", "ports") {
			if tp := str(p, "targetPort"); ports[tp] == 0 {
				bad(svc, "targetPort %q is not a container port of %s", tp, d.name())
			}
		}
	}
	for _, want := range []string{"aws", "azure", "global"} {
		if !roles[want] {
			errs = append(errs, fmt.Errorf("no Deployment runs up --cloud %s", want))
		}
	}
	return errs
}

// readMounted returns the Secret key mounted at path in the container.
func readMounted(d object, c any, pod any, path string, secrets map[string]object, bad func(object, string, ...any)) []byte {
	for _, m := range list(c, "volumeMounts") {
		dir := str(m, "mountPath")
		if !strings.HasPrefix(path, dir+"/") {
			continue
		}
		file := strings.TrimPrefix(path, dir+"/")
		for _, v := range list(pod, "volumes") {
			if str(v, "name") != str(m, "name") {
				continue
			}
			s := secrets[str(v, "secret", "secretName")]
			if s == nil {
				bad(d, "volume %s: no such Secret", str(v, "name"))
				return nil
			}
			key := file
			for _, it := range list(v, "secret", "items") {
				if str(it, "path") == file {
					key = str(it, "key")
				}
			}
			body := str(s, "stringData", key)
			if body == "" {
				bad(d, "Secret %s has no key %s", s.name(), key)
				return nil
			}
			return []byte(body)
		}
	}
	bad(d, "%s is not on a mounted Secret", path)
	return nil
}

// checkRole checks that a role's topology file listens where the pod's
// ports are.
func checkRole(cfg *config.Config, role string, ports map[string]int) error {
	port := func(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
	want := map[string]string{}
	switch role {
	case "global":
		want["frontdoor"], want["edge"], want["logs"], want["console"] = cfg.FrontDoor.Listen, cfg.Edge.Listen, cfg.Logs.Listen, cfg.Console.Listen
	default:
		c := cfg.Clouds[role]
		if c == nil {
			return fmt.Errorf("no cloud %q", role)
		}
		want["api"] = c.API
		if c.Origin != "" && ports["origin"] != 0 {
			want["origin"] = c.Origin
		}
	}
	for name, addr := range want {
		if !strings.HasPrefix(addr, "0.0.0.0:") {
			return fmt.Errorf("%s listens on %s, want 0.0.0.0 in a pod", name, addr)
		}
		if fmt.Sprint(ports[name]) != port(addr) {
			return fmt.Errorf("%s listens on %s but the container port %q is %d", name, addr, name, ports[name])
		}
	}
	return nil
}

func readManifests(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	return files
}

func TestKubernetesManifests(t *testing.T) {
	objs, err := parse(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range check(objs) {
		t.Error(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind()]++
	}
	t.Logf("objects: %v", kinds)
}

// TestCheckFindsMistakes: the checker itself fails on each mistake.
func TestCheckFindsMistakes(t *testing.T) {
	files := readManifests(t)
	for _, tc := range []struct {
		name, file, from, to, want string
	}{
		{"one replica", "kubernetes/aws.yaml", "replicas: 2", "replicas: 1", "replicas"},
		{"no readiness on /healthz", "kubernetes/azure.yaml", "path: /healthz", "path: /", "readiness probe must be GET /healthz"},
		{"root", "kubernetes/aws.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "non-root"},
		{"no PDB", "kubernetes/aws.yaml", "kind: PodDisruptionBudget", "kind: Nothing", "no PodDisruptionBudget"},
		{"PDB blocks drains", "kubernetes/azure.yaml", "minAvailable: 1", "minAvailable: 2", "minAvailable"},
		{"bad topology", "kubernetes/secret.yaml", "leases: {ttl: 5s}", "leases: {ttl: 1ms}", "leases.ttl"},
		{"wrong port", "kubernetes/secret.yaml", "api: 0.0.0.0:8081", "api: 0.0.0.0:9999", "container port"},
		{"console inside the pod", "kubernetes/secret.yaml", `console: {listen: "0.0.0.0:8086"}`, "", "console listens on 127.0.0.1:8086"},
		{"no memory limit for Go", "kubernetes/azure.yaml", "resource: limits.memory", "resource: limits.cpu", "GOMEMLIMIT"},
		{"service to nowhere", "kubernetes/global.yaml", "targetPort: logs", "targetPort: log", ""},
		{"HTTP liveness", "kubernetes/aws.yaml", "tcpSocket: {port: api}", "httpGet: {path: /healthz, port: api}", "liveness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mut := map[string][]byte{}
			for k, v := range files {
				mut[k] = v
			}
			if !bytes.Contains(mut[tc.file], []byte(tc.from)) {
				t.Fatalf("%s has no %q", tc.file, tc.from)
			}
			mut[tc.file] = bytes.Replace(mut[tc.file], []byte(tc.from), []byte(tc.to), 1)
			objs, err := parse(mut)
			if err != nil {
				t.Fatal(err)
			}
			errs := check(objs)
			if tc.name == "service to nowhere" {
				// The global Service is not checked by pod selection of a
				// cloud; its ports are checked below.
				errs = append(errs, checkServices(objs)...)
			}
			if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			}
		})
	}
}

// checkServices checks every Service's target ports against the pods it
// selects.
func checkServices(objs []object) []error {
	var errs []error
	for _, s := range objs {
		if s.kind() != "Service" {
			continue
		}
		found := false
		for _, d := range objs {
			if d.kind() != "Deployment" || !selects(labels(s, "spec", "selector"), labels(d, "spec", "template", "metadata", "labels")) {
				continue
			}
			found = true
			ports := map[string]bool{}
			for _, c := range list(d, "spec", "template", "spec", "containers") {
				for _, p := range list(c, "ports") {
					ports[str(p, "name")] = true
				}
			}
			for _, p := range list(s, "spec", "ports") {
				if !ports[str(p, "targetPort")] {
					errs = append(errs, fmt.Errorf("Service %s: targetPort %q is not a port of %s", s.name(), str(p, "targetPort"), d.name()))
				}
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("Service %s selects no Deployment", s.name()))
		}
	}
	return errs
}

func TestServices(t *testing.T) {
	objs, err := parse(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkServices(objs) {
		t.Error(err)
	}
}

// TestDockerfile: multi-stage, a static build of cmd/intercloud, a
// distroless final stage, a non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(b), -1)
	if len(from) < 2 {
		t.Fatalf("%d FROM lines, want a multi-stage build", len(from))
	}
	if final := from[len(from)-1][1]; !strings.HasPrefix(final, "gcr.io/distroless/") {
		t.Errorf("final stage %s, want distroless", final)
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(string(b), -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "0") || strings.HasPrefix(user[len(user)-1][1], "root") {
		t.Errorf("USER %v, want a non-root user", user)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/intercloud", `ENTRYPOINT ["/intercloud"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}
