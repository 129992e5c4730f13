package config

import (
	"strings"
	"testing"
	"time"
)

const mappingsYAML = `
replication:
  from: aws
  to: azure
  tables: [records, "orders_*"]
  exclude: ["*_tmp", "_ic_*"]
  mappings:
    - table: orders_*
      rename: "copy_{table}"
      columns: {amount: amount_usd}
      exclude_columns: [internal_note]
      filter: "status = 'paid' AND amount >= 10"
  on_error: skip
  on_error_tables: {"orders_*": stop}
  load_parallel: 8
  validate_every: 5m
  schema: full
  source: poll
`

// The mappings are plain data: what the file says, checked and kept.
func TestReplicationMappingsParse(t *testing.T) {
	c, err := Parse([]byte(mappingsYAML), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := c.Replication
	if len(r.Mappings) != 1 || r.Mappings[0].Rename != "copy_{table}" || r.Mappings[0].Columns["amount"] != "amount_usd" ||
		r.Mappings[0].Filter != "status = 'paid' AND amount >= 10" || len(r.Exclude) != 2 ||
		r.OnError != "skip" || r.OnErrorTables["orders_*"] != "stop" || r.LoadParallel != 8 || r.ValidateEvery.D() != 5*time.Minute || r.Schema != "full" || r.Source != "poll" {
		t.Fatalf("replication = %+v", r)
	}
}

func TestReplicationMappingErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown mapping key", "replication:\n  mappings:\n    - {table: a, renam: b}\n", `unknown key "renam"`},
		{"unknown replication key", "replication:\n  excludes: [a]\n", `unknown key "excludes"`},
		{"bad table pattern", "replication:\n  tables: [\"a[\"]\n", `replication.tables[0]: "a[" is not a valid pattern`},
		{"hostile table name", "replication:\n  tables: [\"a; DROP TABLE b\"]\n", `replication.tables[0]: "a; DROP TABLE b" is not a plain name`},
		{"bad exclude", "replication:\n  exclude: [\"[\"]\n", "replication.exclude[0]"},
		{"missing table", "replication:\n  mappings:\n    - {rename: b}\n", "replication.mappings[0].table: a table name or pattern is required"},
		{"bad rename", "replication:\n  mappings:\n    - {table: a, rename: \"{name}_x\"}\n", "replication.mappings[0].rename"},
		{"hostile rename", "replication:\n  mappings:\n    - {table: a, rename: \"x\\\"; DROP TABLE y\"}\n", "replication.mappings[0].rename"},
		{"bad column", "replication:\n  mappings:\n    - {table: a, columns: {\"a b\": c}}\n", "replication.mappings[0].columns"},
		{"bad new column", "replication:\n  mappings:\n    - {table: a, columns: {a: \"c-d\"}}\n", "replication.mappings[0].columns.a"},
		{"columns collide", "replication:\n  mappings:\n    - {table: a, columns: {a: c, b: c}}\n", `replication.mappings[0].columns.b: "c" is also the new name of "a"`},
		{"excluded and renamed", "replication:\n  mappings:\n    - {table: a, columns: {a: c}, exclude_columns: [a]}\n", "replication.mappings[0].exclude_columns[0]"},
		{"bad excluded column", "replication:\n  mappings:\n    - {table: a, exclude_columns: [\"\"]}\n", "replication.mappings[0].exclude_columns[0]"},
		{"filter syntax", "replication:\n  mappings:\n    - {table: a, filter: \"status = \"}\n", "replication.mappings[0].filter: at position 10: expected a literal"},
		{"filter raw sql", "replication:\n  mappings:\n    - {table: a, filter: \"1=1; DROP TABLE records\"}\n", "replication.mappings[0].filter: at position 1: expected a column name"},
		{"filter unterminated", "replication:\n  mappings:\n    - {table: a}\n    - {table: b, filter: \"a = 'x\"}\n", "replication.mappings[1].filter: at position 5: unterminated string"},
		{"bad on_error", "replication:\n  on_error: ignore\n", `replication.on_error: "ignore" is neither "stop" nor "skip"`},
		{"bad table on_error", "replication:\n  on_error_tables: {t: retry}\n", `replication.on_error_tables.t: "retry" is neither`},
		{"bad on_error pattern", "replication:\n  on_error_tables: {\"a[\": skip}\n", `replication.on_error_tables.a[`},
		{"bad schema", "replication:\n  schema: everything\n", `replication.schema: "everything" is neither "tables" nor "full"`},
		{"negative validate_every", "replication:\n  validate_every: -1s\n", "replication.validate_every: must not be negative"},
		{"negative load_parallel", "replication:\n  load_parallel: -1\n", "replication.load_parallel: must not be negative"},
		{"bad source", "replication:\n  source: cdc\n", `replication.source: "cdc" is neither "log" nor "poll"`},
		{"filter null compare", "replication:\n  mappings:\n    - {table: a, filter: \"a = NULL\"}\n", "IS NULL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// replication.source defaults per database: its log where the binary has
// a log source for it, poll where it has none.
func TestReplicationSourceMode(t *testing.T) {
	tests := []struct {
		source string
		hasLog bool
		want   string
	}{
		{"", true, SourceLog},
		{"", false, SourcePoll},
		{SourcePoll, true, SourcePoll},
		{SourceLog, false, SourceLog}, // refused when the stream opens, naming the database
	}
	for _, tt := range tests {
		if got := (Replication{Source: tt.source}).SourceMode(tt.hasLog); got != tt.want {
			t.Errorf("source %q, hasLog %v: mode %q, want %q", tt.source, tt.hasLog, got, tt.want)
		}
	}
	c, err := Parse([]byte("replication:\n  source: log\n"), t.TempDir())
	if err != nil || c.Replication.Source != SourceLog {
		t.Fatalf("source: log parsed as %q, %v", c.Replication.Source, err)
	}
}
