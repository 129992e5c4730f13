// Package rowfilter is the text of replication's table mappings that is
// checked without a database: row filters, table-name patterns and rename
// templates. It imports nothing of intercloud, so the topology file's
// parser checks a mapping with it when the file is loaded; package
// replicate types a parsed filter against a table's columns, evaluates it
// on rows and renders it as SQL.
package rowfilter

import (
	"errors"
	"fmt"
	"math/big"
	"path"
	"strconv"
	"strings"
)

// InternalPrefix starts the names of replication's own tables (checkpoints,
// change tables); they are never replicated, and no rename may make one.
const InternalPrefix = "_ic_"

// TableVar is replaced by the source table's name in a rename template.
const TableVar = "{table}"

// IsPattern reports whether s is a glob rather than a plain name.
func IsPattern(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// CheckPattern checks a path.Match pattern of table names.
func CheckPattern(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern (path.Match syntax: *, ?, [a-z])", p)
	}
	return nil
}

// CheckRename checks a rename template: empty (the name is kept), or a
// plain table name in which TableVar may stand for the source table's name
// ("copy_{table}"), not starting with InternalPrefix.
func CheckRename(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	rest := strings.ReplaceAll(tmpl, TableVar, "t")
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q: the only placeholder is %s", tmpl, TableVar)
	}
	if !isPlainIdent(rest) {
		return fmt.Errorf("%q does not give a plain table name (letters, digits, _)", tmpl)
	}
	if strings.HasPrefix(rest, InternalPrefix) {
		return fmt.Errorf("%q: names starting with %s are reserved", tmpl, InternalPrefix)
	}
	return nil
}

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
// replicate), so both agree.

// maxFilterDepth bounds the nesting of a filter.
const maxFilterDepth = 64

// Error is a filter syntax error at Pos, the 1-based byte offset in
// the filter's text.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("at position %d: %s", e.Pos, e.Msg) }

// Filter is a parsed row filter. It is immutable and safe for concurrent
// use.
type Filter struct {
	root *Node
}

// Root returns the filter's top node.
func (f *Filter) Root() *Node { return f.root }

// Op is what a Node does.
type Op uint8

// The operators of a filter.
const (
	OpAnd     Op = iota + 1 // all Kids are true
	OpOr                    // some Kid is true
	OpNot                   // the Kid is false
	OpCmp                   // Col Cmp Lits[0]
	OpIsNull                // Col IS NULL
	OpNotNull               // Col IS NOT NULL
	OpIn                    // Col IN (Lits...)
)

// LitKind is the kind of a Literal.
type LitKind uint8

// The kinds of literals.
const (
	LitString LitKind = iota + 1 // 'text'
	LitNumber                    // a decimal number, maybe with an exponent
	LitBool                      // TRUE or FALSE
)

// Literal is a constant of a filter.
type Literal struct {
	Kind LitKind
	// Text is the string's value, the number's text, or "true"/"false".
	Text string
	// Pos is the 1-based byte offset of the literal in the filter's text.
	Pos int
}

// Node is a node of a parsed filter: an operator with its operands, or a
// predicate on one column. Nodes belong to their Filter and must not be
// modified.
type Node struct {
	Op Op
	// Kids are the operands of OpAnd, OpOr (two or more) and OpNot (one).
	Kids []*Node
	// Col is the column a predicate reads.
	Col string
	// Cmp is the comparison of OpCmp: =, <>, <, <=, > or >=.
	Cmp string
	// Lits are the literal of OpCmp and the list of OpIn.
	Lits []Literal
	// Pos is the 1-based byte offset of the node in the filter's text.
	Pos int
}

// Parse parses a row filter. Errors are *Error.
func Parse(s string) (*Filter, error) {
	p := &fparser{s: s}
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, &Error{Pos: 1, Msg: "empty filter"}
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
	var walk func(n *Node)
	walk = func(n *Node) {
		if n.Col != "" && !seen[n.Col] {
			seen[n.Col] = true
			out = append(out, n.Col)
		}
		for _, k := range n.Kids {
			walk(k)
		}
	}
	walk(f.root)
	return out
}

func (n *Node) write(b *strings.Builder) {
	switch n.Op {
	case OpAnd, OpOr:
		word := " AND "
		if n.Op == OpOr {
			word = " OR "
		}
		b.WriteByte('(')
		for i, k := range n.Kids {
			if i > 0 {
				b.WriteString(word)
			}
			k.write(b)
		}
		b.WriteByte(')')
	case OpNot:
		b.WriteString("NOT ")
		n.Kids[0].write(b)
	case OpCmp:
		b.WriteString(quoteCol(n.Col) + " " + n.Cmp + " " + n.Lits[0].String())
	case OpIsNull:
		b.WriteString(quoteCol(n.Col) + " IS NULL")
	case OpNotNull:
		b.WriteString(quoteCol(n.Col) + " IS NOT NULL")
	case OpIn:
		b.WriteString(quoteCol(n.Col) + " IN (")
		for i, l := range n.Lits {
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

func (l Literal) String() string {
	switch l.Kind {
	case LitString:
		return "'" + strings.ReplaceAll(l.Text, "'", "''") + "'"
	case LitBool:
		return strings.ToUpper(l.Text)
	}
	return l.Text
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
		return "string " + Literal{Kind: LitString, Text: t.text}.String()
	}
	return strconv.Quote(t.text)
}

type fparser struct {
	s   string
	i   int
	tok token
}

func (p *fparser) errf(format string, a ...any) error {
	return &Error{Pos: p.tok.pos, Msg: fmt.Sprintf(format, a...)}
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
			return &Error{Pos: start + 1, Msg: `"!" must be followed by "="`}
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
				return &Error{Pos: start + 1, Msg: "unterminated " + what}
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
				return &Error{Pos: start + 1, Msg: "empty quoted name"}
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
			return &Error{Pos: start + 1, Msg: "malformed number"}
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
				return &Error{Pos: start + 1, Msg: "malformed number exponent"}
			}
			j = k
		}
		if j < len(s) && (isIdentByte(s[j]) || s[j] == '.') {
			return &Error{Pos: start + 1, Msg: "malformed number"}
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
		return &Error{Pos: start + 1, Msg: fmt.Sprintf("unexpected character %q", rune(c))}
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

func (p *fparser) or(depth int) (*Node, error) {
	n, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	if !p.kw("OR") {
		return n, nil
	}
	or := &Node{Op: OpOr, Kids: []*Node{n}, Pos: n.Pos}
	for p.kw("OR") {
		if err := p.next(); err != nil {
			return nil, err
		}
		k, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		or.Kids = append(or.Kids, k)
	}
	return or, nil
}

func (p *fparser) and(depth int) (*Node, error) {
	n, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	if !p.kw("AND") {
		return n, nil
	}
	and := &Node{Op: OpAnd, Kids: []*Node{n}, Pos: n.Pos}
	for p.kw("AND") {
		if err := p.next(); err != nil {
			return nil, err
		}
		k, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		and.Kids = append(and.Kids, k)
	}
	return and, nil
}

func (p *fparser) not(depth int) (*Node, error) {
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
		return &Node{Op: OpNot, Kids: []*Node{k}, Pos: pos}, nil
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

func (p *fparser) predicate() (*Node, error) {
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
		return &Node{Op: OpCmp, Col: col, Cmp: op, Lits: []Literal{l}, Pos: pos}, nil
	case p.kw("IS"):
		if err := p.next(); err != nil {
			return nil, err
		}
		op := OpIsNull
		if p.kw("NOT") {
			op = OpNotNull
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
		return &Node{Op: op, Col: col, Pos: pos}, nil
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
		n := &Node{Op: OpIn, Col: col, Pos: pos}
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
			n.Lits = append(n.Lits, l)
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
			return &Node{Op: OpNot, Kids: []*Node{n}, Pos: pos}, nil
		}
		return n, nil
	}
	return nil, p.errf("expected a comparison, IS or IN after column %s, found %s", quoteCol(col), p.tok.desc())
}

// literal reads a literal and moves past it.
func (p *fparser) literal() (Literal, error) {
	l := Literal{Pos: p.tok.pos}
	switch {
	case p.tok.kind == tString:
		l.Kind, l.Text = LitString, p.tok.text
	case p.tok.kind == tNumber:
		if _, ok := new(big.Rat).SetString(p.tok.text); !ok {
			return l, p.errf("malformed number %s", p.tok.text)
		}
		l.Kind, l.Text = LitNumber, p.tok.text
	case p.kw("TRUE"), p.kw("FALSE"):
		l.Kind, l.Text = LitBool, strings.ToLower(p.tok.text)
	default:
		return l, p.errf("expected a literal (a 'string', a number, TRUE or FALSE), found %s", p.tok.desc())
	}
	return l, p.next()
}
