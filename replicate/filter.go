package replicate

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/replicate/rowfilter"
	"github.com/intercloud/intercloud/sqldb"
)

// A row filter's language lives in package rowfilter, which parses it
// without a database; here a parsed filter is typed against a table's
// columns, evaluated on rows and rendered as SQL.

// Filter is a parsed row filter (see package rowfilter).
type Filter = rowfilter.Filter

// FilterError is a filter syntax error (see rowfilter.Error).
type FilterError = rowfilter.Error

// ParseFilter parses a row filter (see rowfilter.Parse).
func ParseFilter(s string) (*Filter, error) { return rowfilter.Parse(s) }

// The filter's nodes and literals, under the names this file uses.
type (
	fop     = rowfilter.Op
	literal = rowfilter.Literal
)

const (
	fAnd      = rowfilter.OpAnd
	fOr       = rowfilter.OpOr
	fNot      = rowfilter.OpNot
	fCmp      = rowfilter.OpCmp
	fIsNull   = rowfilter.OpIsNull
	fNotNull  = rowfilter.OpNotNull
	fIn       = rowfilter.OpIn
	litString = rowfilter.LitString
	litNumber = rowfilter.LitNumber
	litBool   = rowfilter.LitBool
)

// compiledFilter is a filter checked against one table's columns, with its
// literals converted to the columns' types.
type compiledFilter struct {
	root *cnode
}

type cnode struct {
	op   fop
	kids []*cnode
	col  string
	typ  sqldb.Type
	cmp  string
	vals []any // literals as comparable Go values (see cmpValue)
	norm []any // literals as normalized values (see Normalize), for binding
}

// filterable reports whether filters may read a column of type t.
func filterable(t sqldb.Type) bool {
	switch t.Kind {
	case sqldb.KindString, sqldb.KindText, sqldb.KindInt, sqldb.KindFloat, sqldb.KindDecimal,
		sqldb.KindBool, sqldb.KindTimestamp, sqldb.KindDate:
		return true
	}
	return false
}

// compileFilter checks the filter against t (the source table) and
// converts its literals to the columns' types.
func compileFilter(f *Filter, t sqldb.Table) (*compiledFilter, error) {
	root, err := compileNode(f.Root(), t)
	if err != nil {
		return nil, err
	}
	return &compiledFilter{root: root}, nil
}

func compileNode(n *rowfilter.Node, t sqldb.Table) (*cnode, error) {
	c := &cnode{op: n.Op, col: n.Col, cmp: n.Cmp}
	for _, k := range n.Kids {
		ck, err := compileNode(k, t)
		if err != nil {
			return nil, err
		}
		c.kids = append(c.kids, ck)
	}
	if n.Col == "" {
		return c, nil
	}
	col, ok := t.Column(n.Col)
	if !ok {
		return nil, fmt.Errorf("filter column %q: table %q has no such column", n.Col, t.Name)
	}
	if !filterable(col.Type) {
		return nil, fmt.Errorf("filter column %q of table %q is %s; filters compare text, numbers, booleans, timestamps and dates", n.Col, t.Name, col.Type.Kind)
	}
	c.typ = col.Type
	if n.Op == fCmp && col.Type.Kind == sqldb.KindBool && n.Cmp != "=" && n.Cmp != "<>" {
		return nil, fmt.Errorf("filter column %q of table %q is boolean: only = and != compare it", n.Col, t.Name)
	}
	for _, l := range n.Lits {
		norm, val, err := literalValue(col.Type, l)
		if err != nil {
			return nil, fmt.Errorf("filter column %q of table %q (%s): literal %s at position %d: %w", n.Col, t.Name, col.Type.Kind, l, l.Pos, err)
		}
		c.norm = append(c.norm, norm)
		c.vals = append(c.vals, val)
	}
	return c, nil
}

// literalValue converts a literal to a column type: the normalized value
// and the comparable value.
func literalValue(t sqldb.Type, l literal) (norm, val any, err error) {
	switch t.Kind {
	case sqldb.KindString, sqldb.KindText:
		if l.Kind != litString {
			return nil, nil, errors.New("a text column compares with a 'string'")
		}
		return l.Text, l.Text, nil
	case sqldb.KindInt:
		if l.Kind != litNumber {
			return nil, nil, errors.New("an integer column compares with a number")
		}
		r, _ := new(big.Rat).SetString(l.Text)
		if !r.IsInt() {
			return nil, nil, errors.New("not an integer")
		}
		i := r.Num()
		switch {
		case i.IsInt64():
			if t.Unsigned && i.Sign() < 0 {
				return nil, nil, errors.New("negative for an unsigned column")
			}
			return i.Int64(), r, nil
		case i.IsUint64() && t.Unsigned:
			return i.Uint64(), r, nil
		}
		return nil, nil, errors.New("out of the column's range")
	case sqldb.KindDecimal:
		if l.Kind != litNumber {
			return nil, nil, errors.New("a decimal column compares with a number")
		}
		r, _ := new(big.Rat).SetString(l.Text)
		return decimalText(r), r, nil
	case sqldb.KindFloat:
		if l.Kind != litNumber {
			return nil, nil, errors.New("a float column compares with a number")
		}
		f, err := strconv.ParseFloat(l.Text, 64)
		if err != nil {
			return nil, nil, errors.New("out of the float range")
		}
		return f, f, nil
	case sqldb.KindBool:
		if l.Kind != litBool {
			return nil, nil, errors.New("a boolean column compares with TRUE or FALSE")
		}
		return l.Text == "true", l.Text == "true", nil
	case sqldb.KindTimestamp, sqldb.KindDate:
		if l.Kind != litString {
			return nil, nil, errors.New("a timestamp or date column compares with a 'string' like '2024-05-06T07:08:09Z'")
		}
		v, err := sqldb.Normalize(t, l.Text)
		if err != nil {
			return nil, nil, err
		}
		return v, v, nil
	}
	return nil, nil, fmt.Errorf("cannot filter %s columns", t.Kind)
}

// decimalText writes an exact decimal without exponent.
func decimalText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	// Exact decimal digits: the denominator of a finite decimal divides a
	// power of ten; otherwise keep 30 digits (the literal was a decimal
	// number, so this happens only for exponents).
	s := r.FloatString(30)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// tri is a three-valued truth.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// match evaluates the filter on a source row (column → value as read).
func (c *compiledFilter) match(row map[string]any) (bool, error) {
	r, err := c.root.eval(row)
	return r == triTrue, err
}

func (n *cnode) eval(row map[string]any) (tri, error) {
	switch n.op {
	case fAnd:
		out := triTrue
		for _, k := range n.kids {
			r, err := k.eval(row)
			if err != nil {
				return 0, err
			}
			if r == triFalse {
				return triFalse, nil
			}
			if r == triUnknown {
				out = triUnknown
			}
		}
		return out, nil
	case fOr:
		out := triFalse
		for _, k := range n.kids {
			r, err := k.eval(row)
			if err != nil {
				return 0, err
			}
			if r == triTrue {
				return triTrue, nil
			}
			if r == triUnknown {
				out = triUnknown
			}
		}
		return out, nil
	case fNot:
		r, err := n.kids[0].eval(row)
		if err != nil || r == triUnknown {
			return r, err
		}
		return 1 - r, nil
	}
	v, err := sqldb.Normalize(n.typ, row[n.col])
	if err != nil {
		return 0, fmt.Errorf("filter column %s: %w", n.col, err)
	}
	switch n.op {
	case fIsNull:
		return boolTri(v == nil), nil
	case fNotNull:
		return boolTri(v != nil), nil
	}
	if v == nil {
		return triUnknown, nil
	}
	cv, err := cmpValue(n.typ, v)
	if err != nil {
		return 0, fmt.Errorf("filter column %s: %w", n.col, err)
	}
	switch n.op {
	case fCmp:
		d := compareValues(cv, n.vals[0])
		var ok bool
		switch n.cmp {
		case "=":
			ok = d == 0
		case "<>":
			ok = d != 0
		case "<":
			ok = d < 0
		case "<=":
			ok = d <= 0
		case ">":
			ok = d > 0
		case ">=":
			ok = d >= 0
		}
		return boolTri(ok), nil
	case fIn:
		for _, l := range n.vals {
			if compareValues(cv, l) == 0 {
				return triTrue, nil
			}
		}
		return triFalse, nil
	}
	return 0, fmt.Errorf("filter: unknown node %d", n.op)
}

func boolTri(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// cmpValue turns a normalized value into the value literals compare with:
// *big.Rat for integers and decimals, float64, bool, string, time.Time.
func cmpValue(t sqldb.Type, v any) (any, error) {
	switch t.Kind {
	case sqldb.KindInt:
		switch x := v.(type) {
		case int64:
			return new(big.Rat).SetInt64(x), nil
		case uint64:
			return new(big.Rat).SetUint64(x), nil
		}
	case sqldb.KindDecimal:
		if s, ok := v.(string); ok {
			r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
			if !ok {
				return nil, fmt.Errorf("%q is not a decimal", s)
			}
			return r, nil
		}
	case sqldb.KindFloat:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case sqldb.KindBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case sqldb.KindString, sqldb.KindText:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case sqldb.KindTimestamp, sqldb.KindDate:
		if ts, ok := v.(time.Time); ok {
			return ts, nil
		}
	}
	return nil, fmt.Errorf("%T is not comparable as %s", v, t.Kind)
}

// compareValues orders two comparable values of the same column type.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case *big.Rat:
		return x.Cmp(b.(*big.Rat))
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case string:
		return strings.Compare(x, b.(string))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	return 0
}

// sql renders the filter for dialect d with its literals bound through a.
// Strings compare by bytes in every dialect (binary collation), so the
// database selects exactly the rows match accepts.
func (c *compiledFilter) sql(d sqldb.Dialect, a *args) (string, error) {
	return c.root.sql(d, a)
}

func (n *cnode) sql(d sqldb.Dialect, a *args) (string, error) {
	switch n.op {
	case fAnd, fOr:
		word := " AND "
		if n.op == fOr {
			word = " OR "
		}
		parts := make([]string, len(n.kids))
		for i, k := range n.kids {
			s, err := k.sql(d, a)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + strings.Join(parts, word) + ")", nil
	case fNot:
		s, err := n.kids[0].sql(d, a)
		if err != nil {
			return "", err
		}
		return "(NOT " + s + ")", nil
	case fIsNull:
		return "(" + d.Quote(n.col) + " IS NULL)", nil
	case fNotNull:
		return "(" + d.Quote(n.col) + " IS NOT NULL)", nil
	}
	col := filterColumnSQL(d, n.col, n.typ)
	bind := func(v any) (string, error) {
		x, err := filterBind(d, n.typ, v)
		if err != nil {
			return "", fmt.Errorf("filter column %s: %w", n.col, err)
		}
		return filterParamSQL(d, n.typ, a.add(x)), nil
	}
	switch n.op {
	case fCmp:
		ph, err := bind(n.norm[0])
		if err != nil {
			return "", err
		}
		return "(" + col + " " + n.cmp + " " + ph + ")", nil
	case fIn:
		phs := make([]string, len(n.norm))
		for i, v := range n.norm {
			ph, err := bind(v)
			if err != nil {
				return "", err
			}
			phs[i] = ph
		}
		return "(" + col + " IN (" + strings.Join(phs, ", ") + "))", nil
	}
	return "", fmt.Errorf("filter: unknown node %d", n.op)
}

// filterColumnSQL is the column as the filter compares it in d.
func filterColumnSQL(d sqldb.Dialect, col string, t sqldb.Type) string {
	q := d.Quote(col)
	switch t.Kind {
	case sqldb.KindString, sqldb.KindText:
		switch d.Name() {
		case "mysql":
			return "CAST(" + q + " AS BINARY)"
		case "postgres":
			return q + ` COLLATE "C"`
		case "sqlserver":
			return q + " COLLATE Latin1_General_BIN2"
		}
	case sqldb.KindDecimal:
		if d.Name() == "sqlite" { // decimals are stored as text
			return "CAST(" + q + " AS NUMERIC)"
		}
	}
	return q
}

// filterParamSQL is a bound literal as the filter compares it in d.
func filterParamSQL(d sqldb.Dialect, t sqldb.Type, ph string) string {
	if t.Kind == sqldb.KindDecimal && d.Name() == "mysql" {
		// A string parameter would be compared as a double.
		return "CAST(" + ph + " AS DECIMAL(65,30))"
	}
	return ph
}

// filterBind converts a normalized literal for binding in d.
func filterBind(d sqldb.Dialect, t sqldb.Type, v any) (any, error) {
	if t.Kind == sqldb.KindDecimal && d.Name() == "sqlite" {
		r, _ := new(big.Rat).SetString(v.(string))
		if r.IsInt() && r.Num().IsInt64() {
			return r.Num().Int64(), nil
		}
		f, _ := r.Float64()
		return f, nil
	}
	return d.Value(t, v)
}
