package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// network is the simulated network: two namespaces, one per cloud, each
// joined to the root namespace (where the test, the global part and the
// databases run) by a veth pair, and to each other by the intercloud
// link. Cutting a link sets it down: packets are dropped, not refused.
type network struct {
	t      testing.TB
	prefix string
	nsA    string // aws
	nsZ    string // azure
	// links by name: "aws" (root–aws), "azure" (root–azure), "inter"
	// (aws–azure); each is the device in the namespace named first.
	links map[string]link
}

type link struct {
	ns, dev string // "" ns: the root namespace
}

// Addresses on the veths.
const (
	rootA  = "10.213.1.1" // root side of root–aws
	awsG   = "10.213.1.2"
	rootZ  = "10.213.2.1"
	azureG = "10.213.2.2"
	awsZ   = "10.213.3.1" // aws side of the intercloud link
	azureA = "10.213.3.2"
)

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetwork builds the namespaces and links, and removes them when the test
// ends, whatever happens. Namespaces left by a run that was killed (same
// prefix) are removed first.
func newNetwork(t testing.TB) *network {
	if os.Geteuid() != 0 {
		t.Skip("the chaos suite needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the chaos suite needs iproute2 (ip)")
	}
	w := &network{t: t, prefix: "icchaos"}
	w.cleanup()
	w.nsA, w.nsZ = w.prefix+"-aws", w.prefix+"-azure"
	t.Cleanup(w.cleanup)
	run(t, "ip", "netns", "add", w.nsA)
	run(t, "ip", "netns", "add", w.nsZ)
	for _, ns := range []string{w.nsA, w.nsZ} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	pair := func(rootDev, nsDev, ns, rootIP, nsIP string) {
		run(t, "ip", "link", "add", rootDev, "type", "veth", "peer", "name", nsDev, "netns", ns)
		run(t, "ip", "addr", "add", rootIP+"/24", "dev", rootDev)
		run(t, "ip", "link", "set", rootDev, "up")
		run(t, "ip", "-n", ns, "addr", "add", nsIP+"/24", "dev", nsDev)
		run(t, "ip", "-n", ns, "link", "set", nsDev, "up")
	}
	pair(w.prefix+"A", "eth-root", w.nsA, rootA, awsG)
	pair(w.prefix+"Z", "eth-root", w.nsZ, rootZ, azureG)
	run(t, "ip", "-n", w.nsA, "link", "add", "eth-azure", "type", "veth", "peer", "name", "eth-aws", "netns", w.nsZ)
	run(t, "ip", "-n", w.nsA, "addr", "add", awsZ+"/24", "dev", "eth-azure")
	run(t, "ip", "-n", w.nsA, "link", "set", "eth-azure", "up")
	run(t, "ip", "-n", w.nsZ, "addr", "add", azureA+"/24", "dev", "eth-aws")
	run(t, "ip", "-n", w.nsZ, "link", "set", "eth-aws", "up")
	w.links = map[string]link{
		"aws":   {"", w.prefix + "A"},
		"azure": {"", w.prefix + "Z"},
		"inter": {w.nsA, "eth-azure"},
	}
	return w
}

// cleanup removes the namespaces (which removes their veths and, with
// them, the peers in the root namespace).
func (w *network) cleanup() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], w.prefix+"-") {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	for _, d := range []string{w.prefix + "A", w.prefix + "Z"} {
		_ = exec.Command("ip", "link", "del", d).Run()
	}
}

// set brings a link down (cut) or up (healed).
func (w *network) set(name string, up bool) {
	l := w.links[name]
	state := "down"
	if up {
		state = "up"
	}
	args := []string{"ip"}
	if l.ns != "" {
		args = append(args, "-n", l.ns)
	}
	run(w.t, append(args, "link", "set", l.dev, state)...)
	// The peer of a veth goes down with it for traffic; bring both sides
	// back on heal.
	if up {
		switch name {
		case "aws":
			run(w.t, "ip", "-n", w.nsA, "link", "set", "eth-root", "up")
		case "azure":
			run(w.t, "ip", "-n", w.nsZ, "link", "set", "eth-root", "up")
		case "inter":
			run(w.t, "ip", "-n", w.nsZ, "link", "set", "eth-aws", "up")
		}
	}
}

// limitRate puts a tbf rate limit on the intercloud link (both ways).
func (w *network) limitRate(rate string) {
	for _, l := range []link{{w.nsA, "eth-azure"}, {w.nsZ, "eth-aws"}} {
		run(w.t, "ip", "netns", "exec", l.ns, "tc", "qdisc", "add", "dev", l.dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "400ms")
	}
}

// inNS returns the command line that runs args in a namespace ("" root).
func inNS(ns string, args ...string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

func addr(ip string, port int) string { return fmt.Sprintf("%s:%d", ip, port) }
