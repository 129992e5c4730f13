package telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ANSI colors of the text format, by level.
var levelColors = map[string]string{"DEBUG": "\x1b[90m", "INFO": "\x1b[36m", "WARN": "\x1b[33m", "ERROR": "\x1b[31m"}

const colorReset = "\x1b[0m"

// TextLine renders one JSON log line as text a person reads: the time of
// day, the level, cloud/component, the message, then the other fields as
// key=value in their order ("15:04:05.000 WARN  azure/publish publish
// failed err=..."). With color, the level (and an error's whole line) is
// colored. A line that is not a JSON object is returned as it is.
func TextLine(line []byte, color bool) []byte {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return line
	}
	var (
		ts, level, msg, cloud, component string
		rest                             []string
	)
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return line
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return line
		}
		var s string
		isStr := json.Unmarshal(v, &s) == nil
		switch {
		case key == "time" && isStr:
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				s = t.Local().Format("15:04:05.000")
			}
			ts = s
		case key == "level" && isStr:
			level = s
		case key == "msg" && isStr:
			msg = s
		case key == "cloud" && isStr:
			cloud = s
		case key == "component" && isStr:
			component = s
		default:
			val := string(v)
			if isStr {
				val = s
				if s == "" || strings.ContainsAny(s, " \t\n\"=") {
					val = fmt.Sprintf("%q", s)
				}
			}
			rest = append(rest, key+"="+val)
		}
	}
	var b strings.Builder
	lv := fmt.Sprintf("%-5s", level)
	if c, ok := levelColors[level]; ok && color {
		lv = c + lv + colorReset
	}
	b.WriteString(ts)
	b.WriteByte(' ')
	b.WriteString(lv)
	b.WriteByte(' ')
	if where := strings.Trim(cloud+"/"+component, "/"); where != "" {
		b.WriteString(where)
		b.WriteByte(' ')
	}
	b.WriteString(msg)
	for _, r := range rest {
		b.WriteByte(' ')
		b.WriteString(r)
	}
	out := b.String()
	if color && level == "ERROR" {
		out = levelColors["ERROR"] + stripColor(out) + colorReset
	}
	return []byte(out + "\n")
}

func stripColor(s string) string {
	for _, c := range levelColors {
		s = strings.ReplaceAll(s, c, "")
	}
	return strings.ReplaceAll(s, colorReset, "")
}
