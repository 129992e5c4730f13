package replicate

import "testing"

func TestPortableDefault(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"'n/a'", "'n/a'"},
		{"'it''s'", "'it''s'"},
		{"'abc'::character varying", "'abc'"},
		{"'2024-01-02 03:04:05'::timestamp without time zone", "'2024-01-02 03:04:05'"},
		{"42", "42"},
		{"-1.5", "-1.5"},
		{"(7)", "7"},
		{"1e3", "1e3"},
		{"true", "TRUE"},
		{"current_timestamp()", "CURRENT_TIMESTAMP"},
		{"current_timestamp(6)", "CURRENT_TIMESTAMP"},
		{"CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"},
		{"now()", "CURRENT_TIMESTAMP"},
		{"uuid()", ""},
		{"'a' || 'b'", ""},
		{"nextval('t_id_seq'::regclass)", ""},
		{"1; DROP TABLE x", ""},
	} {
		got := portableDefault("c", tc.in)
		if got.expr != tc.want || (tc.want == "") != (got.why != "") {
			t.Errorf("portableDefault(%q) = %+v, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTargetIndexName(t *testing.T) {
	if got := targetIndexName("t", "idx"); got != "t_idx" {
		t.Fatal(got)
	}
	long := targetIndexName("a_very_long_table_name_that_goes_on_and_on", "an_index_name_that_is_also_long")
	if len(long) > 63 || long == targetIndexName("a_very_long_table_name_that_goes_on_and_on", "an_index_name_that_is_also_lonG") {
		t.Fatalf("long name %q", long)
	}
}
