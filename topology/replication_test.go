package topology

import (
	"testing"

	"github.com/intercloud/intercloud/config"
)

// A replication section with one mapping rule, in flow style.
const mappingsYAML = `replication: {from: aws, to: azure, tables: [records, "orders_*"], exclude: ["*_tmp", "_ic_*"],
  mappings: [{table: orders_*, rename: "copy_{table}", columns: {amount: amount_usd}, exclude_columns: [internal_note],
    filter: "status = 'paid' AND amount >= 10"}]}
`

func TestReplicationMappings(t *testing.T) {
	c, err := config.Parse([]byte(mappingsYAML), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Mapping(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rules) != 1 || m.Rules[0].Filter == nil || m.Rules[0].Filter.String() != "(status = 'paid' AND amount >= 10)" {
		t.Fatalf("mapping = %+v", m)
	}
	if m.Target("orders_eu") != "copy_orders_eu" || m.Target("records") != "records" {
		t.Fatalf("targets: %s %s", m.Target("orders_eu"), m.Target("records"))
	}
	for table, want := range map[string]bool{"records": true, "orders_eu": true, "orders_tmp": false, "other": false, "_ic_checkpoints": false} {
		if got := m.Includes(table); got != want {
			t.Errorf("Includes(%s) = %v", table, got)
		}
	}
	rev := ReverseMapping(c)
	if !rev.Includes("records") || rev.Includes("orders_eu") || len(rev.Rules) != 0 {
		t.Fatalf("reverse mapping = %+v", rev)
	}
}
