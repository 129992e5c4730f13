package mysql_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/sqldb"
	"github.com/intercloud/intercloud/sqldb/mysql"
)

func TestParseColumnType(t *testing.T) {
	for in, want := range map[string]sqldb.Type{
		"bigint(20) unsigned":           {Kind: sqldb.KindInt, Bits: 64, Unsigned: true},
		"bigint unsigned":               {Kind: sqldb.KindInt, Bits: 64, Unsigned: true},
		"int(11)":                       {Kind: sqldb.KindInt, Bits: 32},
		"tinyint(1)":                    {Kind: sqldb.KindInt, Bits: 8},
		"tinyint(1) unsigned":           {Kind: sqldb.KindInt, Bits: 8, Unsigned: true},
		"mediumint(8) unsigned":         {Kind: sqldb.KindInt, Bits: 24, Unsigned: true},
		"mediumint(9)":                  {Kind: sqldb.KindInt, Bits: 24},
		"bit(1)":                        {Kind: sqldb.KindBool},
		"bit(64)":                       {Kind: sqldb.KindInt, Bits: 64, Unsigned: true},
		"year(4)":                       {Kind: sqldb.KindInt, Bits: 16},
		"datetime":                      {Kind: sqldb.KindTimestamp, Local: true},
		"timestamp(3)":                  {Kind: sqldb.KindTimestamp},
		"point":                         {Kind: sqldb.KindBytes, Spatial: true},
		"set('a','b,c')":                {Kind: sqldb.KindString, Length: 6, Values: []string{"a", "b,c"}, Set: true, Native: "set('a','b,c')"},
		"enum('it''s','x')":             {Kind: sqldb.KindString, Length: 4, Values: []string{"it's", "x"}, Native: "enum('it''s','x')"},
		"enum('')":                      {Kind: sqldb.KindString, Length: 1, Values: []string{""}, Native: "enum('')"},
		"vector(3)":                     {Native: "vector(3)"},
		"tinyint(4)":                    {Kind: sqldb.KindInt, Bits: 8},
		"tinyint(3) unsigned":           {Kind: sqldb.KindInt, Bits: 8, Unsigned: true},
		"smallint(5) unsigned zerofill": {Kind: sqldb.KindInt, Bits: 16, Unsigned: true},
		"decimal(38,10)":                {Kind: sqldb.KindDecimal, Precision: 38, Scale: 10},
		"decimal(10,0) unsigned":        {Kind: sqldb.KindDecimal, Precision: 10},
		"varchar(64)":                   {Kind: sqldb.KindString, Length: 64},
		"mediumtext":                    {Kind: sqldb.KindString},
		"longtext":                      {Kind: sqldb.KindText},
		"datetime(6)":                   {Kind: sqldb.KindTimestamp, Local: true},
		"time(6)":                       {Kind: sqldb.KindTime, Duration: true},
		"varbinary(300)":                {Kind: sqldb.KindBytes, Length: 300},
		"longblob":                      {Kind: sqldb.KindBytes},
		"json":                          {Kind: sqldb.KindJSON},
		"double":                        {Kind: sqldb.KindFloat},
		"enum('a','b')":                 {Kind: sqldb.KindString, Length: 1, Values: []string{"a", "b"}, Native: "enum('a','b')"},
		"geometry":                      {Kind: sqldb.KindBytes, Spatial: true},
	} {
		if got := mysql.ParseColumnType(in); !got.Equal(want) || got.Native != want.Native {
			t.Errorf("ParseColumnType(%q) = %+v, want %+v", in, got, want)
		}
	}
}

// FuzzParseColumnType: any COLUMN_TYPE text maps to a valid kind, and the
// DDL of what it maps to maps back to the same type.
func FuzzParseColumnType(f *testing.F) {
	for _, s := range []string{"bigint(20) unsigned", "decimal(65,30)", "varchar(768)", "tinyint(1)", "enum('x')", "", "int(99999999999999999999)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ := mysql.ParseColumnType(s)
		if typ.Kind == 0 && typ.Native == "" || typ.Kind < 0 || typ.Kind > sqldb.KindJSON {
			t.Fatalf("%q: kind %v without its native name", s, typ.Kind)
		}
		if typ.Kind != 0 {
			if again := mysql.ParseColumnType(mysql.Dialect{}.ColumnType(typ)); again.Kind != typ.Kind {
				t.Fatalf("%q: %+v, its DDL %q reads back as %+v", s, typ, mysql.Dialect{}.ColumnType(typ), again)
			}
		}
		if typ.Length < 0 || typ.Precision < 0 || typ.Scale < 0 {
			t.Fatalf("%q: negative parameter %+v", s, typ)
		}
	})
}

// FuzzConfigFromURL: no URL makes the conversion panic or put the password
// into an error.
func FuzzConfigFromURL(f *testing.F) {
	f.Add("mysql://u:PASSWORD@h:3306/db?tls=true")
	f.Add("mysql://u:PASSWORD@h/db?timeout=x&readTimeout=1s")
	f.Add("mysql://u:PASSWORD@h/db?loc=PASSWORD")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "mysql" {
			return
		}
		pass, ok := u.User.Password()
		_, err = mysql.ConfigFromURL(u)
		if err != nil && ok && len(pass) >= 4 && !strings.Contains(u.RawQuery, pass) && strings.Contains(err.Error(), pass) {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
}
