package mysqlsrc

import (
	"strings"
	"unicode"
)

// TableRef names a table, with its database when the statement gave one.
type TableRef struct {
	Schema string
	Name   string
}

// DDL is what ParseDDL found in a statement.
type DDL struct {
	// Kind is the statement's kind, upper case ("ALTER TABLE", "RENAME
	// TABLE", "DROP TABLE", "TRUNCATE TABLE", "CREATE TABLE", "CREATE
	// INDEX", "DROP INDEX"); empty when the statement changes no table.
	Kind string
	// Tables are the tables it changes (for a rename, old and new names).
	Tables []TableRef
}

// ParseDDL reads enough of a MySQL statement to tell which tables it
// changes. It understands comments, quoted identifiers and strings, and
// never fails: a statement it does not know gives the zero DDL.
func ParseDDL(stmt string) DDL {
	toks := tokenize(stmt)
	p := &ddlParser{toks: toks}
	return p.parse()
}

type token struct {
	text   string
	quoted bool // a `quoted` or "quoted" identifier
	str    bool // a 'string'
}

// tokenize splits a statement into words, quoted identifiers, strings and
// punctuation, dropping comments (but keeping the text of /*! ... */).
func tokenize(s string) []token {
	var out []token
	r := []rune(s)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#' || (c == '-' && i+2 < len(r) && r[i+1] == '-' && unicode.IsSpace(r[i+2])):
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(r) && r[i+1] == '*':
			if i+2 < len(r) && r[i+2] == '!' { // executable comment: keep its text
				i += 3
				for i < len(r) && unicode.IsDigit(r[i]) {
					i++
				}
				continue
			}
			j := i + 2
			for j+1 < len(r) && !(r[j] == '*' && r[j+1] == '/') {
				j++
			}
			i = j + 2
		case c == '*' && i+1 < len(r) && r[i+1] == '/':
			i += 2
		case c == '`' || c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for j < len(r) {
				if r[j] == c {
					if j+1 < len(r) && r[j+1] == c {
						b.WriteRune(c)
						j += 2
						continue
					}
					break
				}
				if c == '\'' && r[j] == '\\' && j+1 < len(r) {
					b.WriteRune(r[j+1])
					j += 2
					continue
				}
				b.WriteRune(r[j])
				j++
			}
			out = append(out, token{text: b.String(), quoted: c != '\'', str: c == '\''})
			i = j + 1
		case isWord(c):
			j := i
			for j < len(r) && isWord(r[j]) {
				j++
			}
			out = append(out, token{text: string(r[i:j])})
			i = j
		default:
			out = append(out, token{text: string(c)})
			i++
		}
	}
	return out
}

func isWord(c rune) bool {
	return c == '_' || c == '$' || unicode.IsLetter(c) || unicode.IsDigit(c)
}

type ddlParser struct {
	toks []token
	i    int
}

func (p *ddlParser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{}
}

// is reports whether the next token is the keyword kw (unquoted).
func (p *ddlParser) is(kw string) bool {
	t := p.peek()
	return !t.quoted && !t.str && strings.EqualFold(t.text, kw)
}

// accept consumes the keyword when it is next.
func (p *ddlParser) accept(kws ...string) bool {
	for _, kw := range kws {
		if p.is(kw) {
			p.i++
			return true
		}
	}
	return false
}

// name reads [schema.]table.
func (p *ddlParser) name() (TableRef, bool) {
	t := p.peek()
	if t.text == "" || t.str || (!t.quoted && !isIdent(t.text)) {
		return TableRef{}, false
	}
	p.i++
	ref := TableRef{Name: t.text}
	if p.peek().text == "." && !p.peek().quoted {
		p.i++
		n := p.peek()
		if n.text == "" || n.str || (!n.quoted && !isIdent(n.text)) {
			return TableRef{}, false
		}
		p.i++
		ref = TableRef{Schema: t.text, Name: n.text}
	}
	return ref, true
}

func isIdent(s string) bool {
	for _, c := range s {
		if !isWord(c) {
			return false
		}
	}
	return s != ""
}

func (p *ddlParser) ifExists() {
	if p.is("IF") {
		p.i++
		p.accept("NOT")
		p.accept("EXISTS")
	}
}

func (p *ddlParser) parse() DDL {
	switch {
	case p.accept("ALTER"):
		p.accept("ONLINE", "OFFLINE")
		p.accept("IGNORE")
		if !p.accept("TABLE") {
			return DDL{}
		}
		p.ifExists()
		t, ok := p.name()
		if !ok {
			return DDL{}
		}
		d := DDL{Kind: "ALTER TABLE", Tables: []TableRef{t}}
		// ALTER TABLE a ... RENAME [TO|AS] b
		for p.i < len(p.toks) {
			if p.accept("RENAME") {
				if p.accept("COLUMN", "INDEX", "KEY") {
					continue
				}
				p.accept("TO", "AS")
				if n, ok := p.name(); ok {
					d.Tables = append(d.Tables, n)
				}
				continue
			}
			p.i++
		}
		return d
	case p.accept("RENAME"):
		if !p.accept("TABLE", "TABLES") {
			return DDL{}
		}
		d := DDL{Kind: "RENAME TABLE"}
		for {
			p.ifExists()
			a, ok := p.name()
			if !ok {
				break
			}
			d.Tables = append(d.Tables, a)
			p.accept("WAIT", "NOWAIT")
			if p.is("WAIT") {
				p.i++
			}
			if !p.accept("TO") {
				break
			}
			b, ok := p.name()
			if !ok {
				break
			}
			d.Tables = append(d.Tables, b)
			if p.peek().text != "," {
				break
			}
			p.i++
		}
		if len(d.Tables) == 0 {
			return DDL{}
		}
		return d
	case p.accept("DROP"):
		p.accept("TEMPORARY")
		switch {
		case p.accept("TABLE", "TABLES"):
			p.ifExists()
			d := DDL{Kind: "DROP TABLE"}
			for {
				t, ok := p.name()
				if !ok {
					break
				}
				d.Tables = append(d.Tables, t)
				if p.peek().text != "," {
					break
				}
				p.i++
			}
			if len(d.Tables) == 0 {
				return DDL{}
			}
			return d
		case p.accept("INDEX"):
			return p.indexOn("DROP INDEX")
		}
		return DDL{}
	case p.accept("TRUNCATE"):
		p.accept("TABLE")
		t, ok := p.name()
		if !ok {
			return DDL{}
		}
		return DDL{Kind: "TRUNCATE TABLE", Tables: []TableRef{t}}
	case p.accept("CREATE"):
		if p.accept("OR") && !p.accept("REPLACE") {
			return DDL{}
		}
		p.accept("TEMPORARY")
		if p.accept("TABLE") {
			p.ifExists()
			t, ok := p.name()
			if !ok {
				return DDL{}
			}
			return DDL{Kind: "CREATE TABLE", Tables: []TableRef{t}}
		}
		p.accept("ONLINE", "OFFLINE")
		p.accept("UNIQUE", "FULLTEXT", "SPATIAL")
		if p.accept("INDEX") {
			return p.indexOn("CREATE INDEX")
		}
	}
	return DDL{}
}

// indexOn reads "[IF [NOT] EXISTS] name ON table".
func (p *ddlParser) indexOn(kind string) DDL {
	p.ifExists()
	if _, ok := p.name(); !ok {
		return DDL{}
	}
	for p.i < len(p.toks) && !p.is("ON") {
		p.i++
	}
	if !p.accept("ON") {
		return DDL{}
	}
	t, ok := p.name()
	if !ok {
		return DDL{}
	}
	return DDL{Kind: kind, Tables: []TableRef{t}}
}
