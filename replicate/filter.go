package replicate

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/intercloud/intercloud/sqldb"
)

// A row filter is a small expression language, parsed once and never passed
// to a database as text:
//
//	filter     = or
//	or         = and { "OR" and }
//	and        = not { "AND" not }
//	not        = "NOT" not | "(" or ")" | predicate
//	predicate  = column op literal
//	           | column "IS" [ "NOT" ] "NULL"
//	           | column [ "NOT" ] "IN" "(" literal { "," literal } ")"
//	op         = "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//	literal    = 'string' ('' is a quote) | number | TRUE | FALSE
//
// Keywords are case-insensitive; a column is a name of letters, digits and
// _ (or "double quoted"). NULL is compared only with IS [NOT] NULL. The
// filter is evaluated with SQL's three-valued logic: a comparison with a
// NULL column is unknown, NOT unknown is unknown, and a row passes only when
// the whole filter is true. Strings compare by their bytes (no collation),
// numbers by value, timestamps and dates as instants. The same filter is
// rendered as SQL with bound parameters for the full load (see
// Filter.Compile), so both agree.

// maxFilterDepth bounds the nesting of a filter.
const maxFilterDepth = 64

// FilterError is a filter syntax error at Pos, the 1-based byte offset in
// the filter's text.
type FilterError struct {
	Pos int
	Msg string
}

func (e *FilterError) Error() string { return fmt.Sprintf("at position %d: %s", e.Pos, e.Msg) }

// Filter is a parsed row filter. It is immutable and safe for concurrent
// use.
type Filter struct {
	root *fnode
}

type fop uint8

const (
	fAnd fop = iota + 1
	fOr
	fNot
	fCmp
	fIsNull
	fNotNull
	fIn
)

type litKind uint8

const (
	litString litKind = iota + 1
	litNumber
	litBool
)

type literal struct {
	kind litKind
	text string // the string's value, the number's text, "true"/"false"
	pos  int
}

type fnode struct {
	op   fop
	kids []*fnode
	col  string
	cmp  string // =, <>, <, <=, >, >=
	lits []literal
	pos  int
}

// ParseFilter parses a row filter. Errors are *FilterError.
func ParseFilter(s string) (*Filter, error) {
	p := &fparser{s: s}
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, &FilterError{Pos: 1, Msg: "empty filter"}
	}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errf("unexpected %s", p.tok.desc())
	}
	return &Filter{root: n}, nil
}

// String renders the filter in canonical form; parsing it gives the same
// filter.
func (f *Filter) String() string {
	var b strings.Builder
	f.root.write(&b)
	return b.String()
}

// Columns lists the columns the filter reads, once each, in order of
// appearance.
func (f *Filter) Columns() []string {
	var out []string
	seen := map[string]bool{}
	var walk func(n *fnode)
	walk = func(n *fnode) {
		if n.col != "" && !seen[n.col] {
			seen[n.col] = true
			out = append(out, n.col)
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	walk(f.root)
	return out
}

func (n *fnode) write(b *strings.Builder) {
	switch n.op {
	case fAnd, fOr:
		word := " AND "
		if n.op == fOr {
			word = " OR "
		}
		b.WriteByte('(')
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(word)
			}
			k.write(b)
		}
		b.WriteByte(')')
	case fNot:
		b.WriteString("NOT ")
		n.kids[0].write(b)
	case fCmp:
		b.WriteString(quoteCol(n.col) + " " + n.cmp + " " + n.lits[0].String())
	case fIsNull:
		b.WriteString(quoteCol(n.col) + " IS NULL")
	case fNotNull:
		b.WriteString(quoteCol(n.col) + " IS NOT NULL")
	case fIn:
		b.WriteString(quoteCol(n.col) + " IN (")
		for i, l := range n.lits {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(l.String())
		}
		b.WriteByte(')')
	}
}

func quoteCol(c string) string {
	if isPlainIdent(c) && !isKeyword(c) {
		return c
	}
	return `"` + strings.ReplaceAll(c, `"`, `""`) + `"`
}

func (l literal) String() string {
	switch l.kind {
	case litString:
		return "'" + strings.ReplaceAll(l.text, "'", "''") + "'"
	case litBool:
		return strings.ToUpper(l.text)
	}
	return l.text
}

// --- lexer and parser ---

type tkind uint8

const (
	tEOF tkind = iota
	tIdent
	tQIdent // "quoted identifier"
	tString
	tNumber
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tkind
	text string
	pos  int // 1-based
}

func (t token) desc() string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tString:
		return "string " + literal{kind: litString, text: t.text}.String()
	}
	return strconv.Quote(t.text)
}

type fparser struct {
	s   string
	i   int
	tok token
}

func (p *fparser) errf(format string, a ...any) error {
	return &FilterError{Pos: p.tok.pos, Msg: fmt.Sprintf(format, a...)}
}

func (p *fparser) next() error {
	s := p.s
	for p.i < len(s) && (s[p.i] == ' ' || s[p.i] == '\t' || s[p.i] == '\n' || s[p.i] == '\r') {
		p.i++
	}
	start := p.i
	p.tok = token{pos: start + 1}
	if p.i >= len(s) {
		p.tok.kind = tEOF
		return nil
	}
	c := s[p.i]
	switch {
	case c == '(':
		p.i++
		p.tok.kind, p.tok.text = tLParen, "("
	case c == ')':
		p.i++
		p.tok.kind, p.tok.text = tRParen, ")"
	case c == ',':
		p.i++
		p.tok.kind, p.tok.text = tComma, ","
	case c == '=':
		p.i++
		p.tok.kind, p.tok.text = tOp, "="
	case c == '!' || c == '<' || c == '>':
		p.i++
		op := string(c)
		if p.i < len(s) && (s[p.i] == '=' || (c == '<' && s[p.i] == '>')) {
			op += string(s[p.i])
			p.i++
		}
		if op == "!" {
			return &FilterError{Pos: start + 1, Msg: `"!" must be followed by "="`}
		}
		if op == "!=" {
			op = "<>"
		}
		p.tok.kind, p.tok.text = tOp, op
	case c == '\'' || c == '"':
		var b strings.Builder
		p.i++
		for {
			if p.i >= len(s) {
				what := "string"
				if c == '"' {
					what = "quoted name"
				}
				return &FilterError{Pos: start + 1, Msg: "unterminated " + what}
			}
			if s[p.i] == c {
				if p.i+1 < len(s) && s[p.i+1] == c {
					b.WriteByte(c)
					p.i += 2
					continue
				}
				p.i++
				break
			}
			b.WriteByte(s[p.i])
			p.i++
		}
		p.tok.text = b.String()
		if c == '\'' {
			p.tok.kind = tString
		} else {
			if p.tok.text == "" {
				return &FilterError{Pos: start + 1, Msg: "empty quoted name"}
			}
			p.tok.kind = tQIdent
		}
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		j := p.i
		if c == '-' || c == '+' {
			j++
		}
		digits := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
			digits++
		}
		if j < len(s) && s[j] == '.' {
			j++
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
				digits++
			}
		}
		if digits == 0 {
			return &FilterError{Pos: start + 1, Msg: "malformed number"}
		}
		if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
			k := j + 1
			if k < len(s) && (s[k] == '+' || s[k] == '-') {
				k++
			}
			ed := 0
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
				ed++
			}
			if ed == 0 || ed > 4 {
				return &FilterError{Pos: start + 1, Msg: "malformed number exponent"}
			}
			j = k
		}
		if j < len(s) && (isIdentByte(s[j]) || s[j] == '.') {
			return &FilterError{Pos: start + 1, Msg: "malformed number"}
		}
		p.tok.kind, p.tok.text = tNumber, strings.TrimPrefix(s[p.i:j], "+")
		p.i = j
	case isIdentByte(c) && !(c >= '0' && c <= '9'):
		j := p.i
		for j < len(s) && isIdentByte(s[j]) {
			j++
		}
		p.tok.kind, p.tok.text = tIdent, s[p.i:j]
		p.i = j
	default:
		return &FilterError{Pos: start + 1, Msg: fmt.Sprintf("unexpected character %q", rune(c))}
	}
	return nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isPlainIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

var filterKeywords = map[string]bool{"AND": true, "OR": true, "NOT": true, "IS": true, "NULL": true, "IN": true, "TRUE": true, "FALSE": true}

func isKeyword(s string) bool { return filterKeywords[strings.ToUpper(s)] }

// kw reports whether the current token is the keyword k.
func (p *fparser) kw(k string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, k)
}

func (p *fparser) or(depth int) (*fnode, error) {
	n, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	if !p.kw("OR") {
		return n, nil
	}
	or := &fnode{op: fOr, kids: []*fnode{n}, pos: n.pos}
	for p.kw("OR") {
		if err := p.next(); err != nil {
			return nil, err
		}
		k, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		or.kids = append(or.kids, k)
	}
	return or, nil
}

func (p *fparser) and(depth int) (*fnode, error) {
	n, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	if !p.kw("AND") {
		return n, nil
	}
	and := &fnode{op: fAnd, kids: []*fnode{n}, pos: n.pos}
	for p.kw("AND") {
		if err := p.next(); err != nil {
			return nil, err
		}
		k, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		and.kids = append(and.kids, k)
	}
	return and, nil
}

func (p *fparser) not(depth int) (*fnode, error) {
	if depth >= maxFilterDepth {
		return nil, p.errf("filter nested too deeply (more than %d levels)", maxFilterDepth)
	}
	pos := p.tok.pos
	switch {
	case p.kw("NOT"):
		if err := p.next(); err != nil {
			return nil, err
		}
		k, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return &fnode{op: fNot, kids: []*fnode{k}, pos: pos}, nil
	case p.tok.kind == tLParen:
		if err := p.next(); err != nil {
			return nil, err
		}
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errf(`expected ")" or AND/OR, found %s`, p.tok.desc())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return n, nil
	}
	return p.predicate()
}

func (p *fparser) predicate() (*fnode, error) {
	pos := p.tok.pos
	var col string
	switch {
	case p.tok.kind == tQIdent:
		col = p.tok.text
	case p.tok.kind == tIdent && !isKeyword(p.tok.text):
		col = p.tok.text
	default:
		return nil, p.errf("expected a column name, found %s", p.tok.desc())
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	switch {
	case p.tok.kind == tOp:
		op := p.tok.text
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.kw("NULL") {
			return nil, p.errf("compare with NULL using IS NULL or IS NOT NULL")
		}
		l, err := p.literal()
		if err != nil {
			return nil, err
		}
		return &fnode{op: fCmp, col: col, cmp: op, lits: []literal{l}, pos: pos}, nil
	case p.kw("IS"):
		if err := p.next(); err != nil {
			return nil, err
		}
		op := fIsNull
		if p.kw("NOT") {
			op = fNotNull
			if err := p.next(); err != nil {
				return nil, err
			}
		}
		if !p.kw("NULL") {
			return nil, p.errf("expected NULL after IS, found %s", p.tok.desc())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return &fnode{op: op, col: col, pos: pos}, nil
	case p.kw("IN"), p.kw("NOT"):
		negate := p.kw("NOT")
		if negate {
			if err := p.next(); err != nil {
				return nil, err
			}
			if !p.kw("IN") {
				return nil, p.errf("expected IN after NOT, found %s", p.tok.desc())
			}
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.tok.kind != tLParen {
			return nil, p.errf(`expected "(" after IN, found %s`, p.tok.desc())
		}
		n := &fnode{op: fIn, col: col, pos: pos}
		for {
			if err := p.next(); err != nil {
				return nil, err
			}
			if p.kw("NULL") {
				return nil, p.errf("NULL cannot be in an IN list; use IS NULL")
			}
			l, err := p.literal()
			if err != nil {
				return nil, err
			}
			n.lits = append(n.lits, l)
			if p.tok.kind == tRParen {
				break
			}
			if p.tok.kind != tComma {
				return nil, p.errf(`expected "," or ")" in IN list, found %s`, p.tok.desc())
			}
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		if negate {
			return &fnode{op: fNot, kids: []*fnode{n}, pos: pos}, nil
		}
		return n, nil
	}
	return nil, p.errf("expected a comparison, IS or IN after column %s, found %s", quoteCol(col), p.tok.desc())
}

// literal reads a literal and moves past it.
func (p *fparser) literal() (literal, error) {
	l := literal{pos: p.tok.pos}
	switch {
	case p.tok.kind == tString:
		l.kind, l.text = litString, p.tok.text
	case p.tok.kind == tNumber:
		if _, ok := new(big.Rat).SetString(p.tok.text); !ok {
			return l, p.errf("malformed number %s", p.tok.text)
		}
		l.kind, l.text = litNumber, p.tok.text
	case p.kw("TRUE"), p.kw("FALSE"):
		l.kind, l.text = litBool, strings.ToLower(p.tok.text)
	default:
		return l, p.errf("expected a literal (a 'string', a number, TRUE or FALSE), found %s", p.tok.desc())
	}
	return l, p.next()
}

// --- typing, evaluation and SQL ---

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

// compile checks the filter against t (the source table) and converts its
// literals to the columns' types.
func (f *Filter) compile(t sqldb.Table) (*compiledFilter, error) {
	root, err := compileNode(f.root, t)
	if err != nil {
		return nil, err
	}
	return &compiledFilter{root: root}, nil
}

func compileNode(n *fnode, t sqldb.Table) (*cnode, error) {
	c := &cnode{op: n.op, col: n.col, cmp: n.cmp}
	for _, k := range n.kids {
		ck, err := compileNode(k, t)
		if err != nil {
			return nil, err
		}
		c.kids = append(c.kids, ck)
	}
	if n.col == "" {
		return c, nil
	}
	col, ok := t.Column(n.col)
	if !ok {
		return nil, fmt.Errorf("filter column %q: table %q has no such column", n.col, t.Name)
	}
	if !filterable(col.Type) {
		return nil, fmt.Errorf("filter column %q of table %q is %s; filters compare text, numbers, booleans, timestamps and dates", n.col, t.Name, col.Type.Kind)
	}
	c.typ = col.Type
	if n.op == fCmp && col.Type.Kind == sqldb.KindBool && n.cmp != "=" && n.cmp != "<>" {
		return nil, fmt.Errorf("filter column %q of table %q is boolean: only = and != compare it", n.col, t.Name)
	}
	for _, l := range n.lits {
		norm, val, err := literalValue(col.Type, l)
		if err != nil {
			return nil, fmt.Errorf("filter column %q of table %q (%s): literal %s at position %d: %w", n.col, t.Name, col.Type.Kind, l, l.pos, err)
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
		if l.kind != litString {
			return nil, nil, errors.New("a text column compares with a 'string'")
		}
		return l.text, l.text, nil
	case sqldb.KindInt:
		if l.kind != litNumber {
			return nil, nil, errors.New("an integer column compares with a number")
		}
		r, _ := new(big.Rat).SetString(l.text)
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
		if l.kind != litNumber {
			return nil, nil, errors.New("a decimal column compares with a number")
		}
		r, _ := new(big.Rat).SetString(l.text)
		return decimalText(r), r, nil
	case sqldb.KindFloat:
		if l.kind != litNumber {
			return nil, nil, errors.New("a float column compares with a number")
		}
		f, err := strconv.ParseFloat(l.text, 64)
		if err != nil {
			return nil, nil, errors.New("out of the float range")
		}
		return f, f, nil
	case sqldb.KindBool:
		if l.kind != litBool {
			return nil, nil, errors.New("a boolean column compares with TRUE or FALSE")
		}
		return l.text == "true", l.text == "true", nil
	case sqldb.KindTimestamp, sqldb.KindDate:
		if l.kind != litString {
			return nil, nil, errors.New("a timestamp or date column compares with a 'string' like '2024-05-06T07:08:09Z'")
		}
		v, err := Normalize(t, l.text)
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
	v, err := Normalize(n.typ, row[n.col])
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
