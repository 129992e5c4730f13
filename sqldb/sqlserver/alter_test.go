package sqlserver_test

import (
	"strings"
	"testing"

	"github.com/intercloud/intercloud/internal/golden"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/sqlserver"
)

func TestGoldenAlter(t *testing.T) {
	d := sqlserver.Dialect{}
	for _, tc := range []struct {
		name  string
		stmts []string
	}{
		{"alter_add_string", d.AddColumn("kv", sqldb.Column{Name: "note", Type: sqldb.Type{Kind: sqldb.KindString, Length: 40}})},
		{"alter_add_json", d.AddColumn("order ]by[ it's", sqldb.Column{Name: "a]]b", Type: sqldb.Type{Kind: sqldb.KindJSON}})},
		{"alter_add_uint16", d.AddColumn("kv", sqldb.Column{Name: "u", Type: sqldb.Type{Kind: sqldb.KindInt, Bits: 16, Unsigned: true}})},
		{"alter_drop", d.DropColumn("order ]by[ it's", "it's")},
		{"alter_widen_varchar", d.WidenColumn("kv", sqldb.Column{Name: "note", Type: sqldb.Type{Kind: sqldb.KindString, Length: 200}, Nullable: true})},
		{"alter_widen_decimal", d.WidenColumn("kv", sqldb.Column{Name: "d", Type: sqldb.Type{Kind: sqldb.KindDecimal, Precision: 20, Scale: 4}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden.Check(t, tc.name, strings.Join(tc.stmts, "\n;\n")+"\n")
		})
	}
}
