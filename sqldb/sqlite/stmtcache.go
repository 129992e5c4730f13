package sqlite

import (
	"container/list"
	"context"
	sqldriver "database/sql/driver"
	"fmt"
)

// Every connection this package opens keeps the statements it ran last
// prepared, so a statement run again on it (a checkpoint, a change-table
// read, a multi-row insert of a size seen before) is bound and stepped
// without being parsed and compiled again; compiling an insert into a
// captured table compiles its triggers too. The driver (modernc.org/sqlite)
// prepares every ExecContext and QueryContext afresh otherwise. Which
// statements repeat is up to the callers: sqldb.StatementRows gives
// multi-row statements sizes that do.
//
// A statement in use (its rows not yet closed) is never handed out twice:
// a second run of the same text meanwhile gets a statement of its own,
// closed after use. The cache is bounded by the length of the SQL text it
// holds (a proxy for the compiled program's size) and drops the least
// recently used statement first. SQLite re-prepares a cached statement by
// itself when the schema changed.

const (
	// cacheTextBudget bounds the SQL text of one connection's cached
	// statements, in bytes.
	cacheTextBudget = 64 << 10
	// cacheMaxText is the longest statement cached.
	cacheMaxText = cacheTextBudget / 4
	// cacheMaxStmts bounds one connection's cached statements.
	cacheMaxStmts = 128
)

// fullConn is what the driver's connections implement.
type fullConn interface {
	sqldriver.Conn
	sqldriver.ConnBeginTx
	sqldriver.ConnPrepareContext
	sqldriver.ExecerContext
	sqldriver.QueryerContext
	sqldriver.Pinger
	sqldriver.SessionResetter
	sqldriver.Validator
}

// fullStmt is what the driver's statements implement.
type fullStmt interface {
	sqldriver.Stmt
	sqldriver.StmtExecContext
	sqldriver.StmtQueryContext
}

// fullRows is what the driver's rows implement.
type fullRows interface {
	sqldriver.Rows
	sqldriver.RowsColumnTypeDatabaseTypeName
	sqldriver.RowsColumnTypeLength
	sqldriver.RowsColumnTypeNullable
	sqldriver.RowsColumnTypePrecisionScale
	sqldriver.RowsColumnTypeScanType
}

var (
	_ fullConn = (*cachingConn)(nil)
	_ fullRows = (*cachedRows)(nil)
)

// cachingConnector wraps the driver's connector; its connections share
// one write gate (gate.go).
type cachingConnector struct {
	sqldriver.Connector
	gate *writeGate
}

// Close closes the connection the gate keeps of its own (database/sql
// calls it from DB.Close).
func (c cachingConnector) Close() error {
	if c.gate == nil {
		return nil
	}
	return c.gate.wal.close()
}

// Connect implements sqldriver.Connector.
func (c cachingConnector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if fc, ok := cn.(fullConn); ok {
		return &cachingConn{fullConn: fc, gate: c.gate, stmts: map[string]*list.Element{}, lru: list.New()}, nil
	}
	return cn, nil
}

// cachingConn is a connection with its statement cache. database/sql
// never uses a connection from two goroutines at once (it holds the
// connection's lock around every call, rows' included), so it needs no
// lock of its own.
type cachingConn struct {
	fullConn
	gate  *writeGate               // shared by the database's connections; nil: none
	inTx  bool                     // a transaction is open (its writes hold the gate already)
	stmts map[string]*list.Element // SQL text → element of lru holding a *cachedStmt
	lru   *list.List               // front: most recently used
	text  int                      // bytes of SQL text cached
}

// cachedStmt is one prepared statement of the cache.
type cachedStmt struct {
	query string
	stmt  fullStmt
	busy  bool // its rows are open
}

// stmt returns a prepared statement of query and the function that
// releases it after use.
func (c *cachingConn) stmt(ctx context.Context, query string) (fullStmt, func(), error) {
	if e, ok := c.stmts[query]; ok {
		cs := e.Value.(*cachedStmt)
		if !cs.busy {
			c.lru.MoveToFront(e)
			cs.busy = true
			return cs.stmt, func() { cs.busy = false }, nil
		}
	}
	ds, err := c.fullConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	s, ok := ds.(fullStmt)
	if !ok {
		ds.Close()
		return nil, nil, sqldriver.ErrSkip
	}
	if _, dup := c.stmts[query]; dup || len(query) > cacheMaxText {
		return s, func() { s.Close() }, nil
	}
	cs := &cachedStmt{query: query, stmt: s, busy: true}
	c.stmts[query] = c.lru.PushFront(cs)
	c.text += len(query)
	c.evict()
	return s, func() { cs.busy = false }, nil
}

// evict closes the least recently used statements that are not in use
// while the cache is over its bounds.
func (c *cachingConn) evict() {
	for e := c.lru.Back(); e != nil && (c.text > cacheTextBudget || c.lru.Len() > cacheMaxStmts); {
		prev := e.Prev()
		if cs := e.Value.(*cachedStmt); !cs.busy {
			c.drop(e)
		}
		e = prev
	}
}

// drop removes a statement from the cache and closes it.
func (c *cachingConn) drop(e *list.Element) {
	cs := e.Value.(*cachedStmt)
	c.lru.Remove(e)
	delete(c.stmts, cs.query)
	c.text -= len(cs.query)
	cs.stmt.Close()
}

// ExecContext implements sqldriver.ExecerContext with a cached statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	leave, err := c.exclusive(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.exec(ctx, query, args)
	if lerr := leave(err == nil); err == nil {
		err = lerr
	}
	return res, err
}

// exec runs query with a cached statement.
func (c *cachingConn) exec(ctx context.Context, query string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	s, release, err := c.stmt(ctx, query)
	if err == sqldriver.ErrSkip {
		return c.fullConn.ExecContext(ctx, query, args)
	}
	if err != nil {
		return nil, err
	}
	defer release()
	return s.ExecContext(ctx, args)
}

// QueryContext implements sqldriver.QueryerContext with a cached statement,
// released when the rows are closed.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	s, release, err := c.stmt(ctx, query)
	if err == sqldriver.ErrSkip {
		return c.fullConn.QueryContext(ctx, query, args)
	}
	if err != nil {
		return nil, err
	}
	r, err := s.QueryContext(ctx, args)
	if err != nil {
		release()
		return nil, err
	}
	fr, ok := r.(fullRows)
	if !ok {
		// Never run the query again to get other rows: it has run (an
		// INSERT ... RETURNING would apply twice).
		r.Close()
		release()
		return nil, fmt.Errorf("sqlite: the driver's rows (%T) lack the column type methods", r)
	}
	return &cachedRows{fullRows: fr, release: release}, nil
}

// Close closes the cached statements, then the connection (SQLite does
// not close a connection that has statements left). A statement whose rows
// are still open is left to them.
func (c *cachingConn) Close() error {
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		if !e.Value.(*cachedStmt).busy {
			c.drop(e)
		}
		e = next
	}
	return c.fullConn.Close()
}

// cachedRows releases its statement when closed.
type cachedRows struct {
	fullRows
	release func()
}

// Close implements sqldriver.Rows.
func (r *cachedRows) Close() error {
	err := r.fullRows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}
