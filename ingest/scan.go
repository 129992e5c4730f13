package ingest

import "github.com/intercloud/intercloud/internal/flatjson"

// scanFlatObject reads line as one JSON object whose values are strings,
// numbers, true, false or null (no nesting), with no escape in a key and
// no key twice, and appends its members to r. It reports false, with r
// unchanged, for anything else (other values, a syntax error, trailing
// data): the caller then reads the line with encoding/json, which gives
// the same members for every line this accepts and the precise error for
// the others. line is valid UTF-8.
func scanFlatObject(line []byte, r *rawRecord) bool {
	start := len(r.members)
	ok := flatjson.Object(line, func(key, raw []byte) bool {
		for _, m := range r.members[start:] {
			if m.key == string(key) {
				return false
			}
		}
		r.members = append(r.members, member{key: string(key), raw: raw[:len(raw):len(raw)]})
		return true
	})
	if !ok {
		r.members = r.members[:start]
	}
	return ok
}

// scanScalar returns the end of the JSON string, number, true, false or
// null starting at i, or -1.
func scanScalar(b []byte, i int) int { return flatjson.ScalarEnd(b, i) }

func skipSpace(b []byte, i int) int { return flatjson.SkipSpace(b, i) }
