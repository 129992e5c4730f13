package telemetry

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Metric is one sample in the Prometheus text exposition format.
type Metric struct {
	Name   string
	Help   string
	Type   string // "counter" or "gauge"
	Labels map[string]string
	Value  float64
}

// WriteMetrics writes samples in the Prometheus text format (version
// 0.0.4), grouping samples of one name under one HELP/TYPE header.
func WriteMetrics(w io.Writer, ms []Metric) error {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	var b strings.Builder
	last := ""
	for _, m := range ms {
		if m.Name != last {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.Name, escapeHelp(m.Help), m.Name, m.Type)
			last = m.Name
		}
		b.WriteString(m.Name)
		if len(m.Labels) > 0 {
			keys := make([]string, 0, len(m.Labels))
			for k := range m.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", k, escapeLabel(m.Labels[k]))
			}
			b.WriteByte('}')
		}
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(m.Value, 'g', -1, 64))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeLabel leaves quoting to %q, which escapes backslash, quote and
// newline the way the format wants, and drops other control characters.
func escapeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return -1
		}
		return r
	}, s)
}
