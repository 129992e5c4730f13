package mysql

import (
	"context"
	"database/sql/driver"
	"math"
)

// The driver (github.com/go-sql-driver/mysql) returns BIT(n) values as
// their raw big-endian bytes, which no reader can tell from text. Every
// connection this package opens turns them into the unsigned integer they
// hold (int64, or uint64 above math.MaxInt64), the value the binary log
// gives too, so a full load, a validation and change data capture read a
// BIT column alike. Describe maps BIT(1) to bool and wider BITs to uint64.

// bitConnector wraps the driver's connector.
type bitConnector struct{ driver.Connector }

// fullConn is what the driver's connections implement.
type fullConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// fullStmt is what the driver's statements implement.
type fullStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
	driver.NamedValueChecker
}

// fullRows is what the driver's rows implement.
type fullRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
	driver.RowsNextResultSet
}

var (
	_ fullConn = (*bitConn)(nil)
	_ fullStmt = (*bitStmt)(nil)
	_ fullRows = (*bitRows)(nil)
)

func (c bitConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if fc, ok := cn.(fullConn); ok {
		return &bitConn{fc}, nil
	}
	return cn, nil
}

type bitConn struct{ fullConn }

// QueryContext runs a query without arguments; one with arguments goes
// through a prepared statement (driver.ErrSkip), whose rows come in the
// binary protocol even when the connection interpolates the arguments of
// statements (see the package doc).
func (c *bitConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) > 0 {
		return nil, driver.ErrSkip
	}
	r, err := c.fullConn.QueryContext(ctx, query, args)
	return wrapRows(r), err
}

func (c *bitConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return wrapStmt(c.fullConn.PrepareContext(ctx, query))
}

func (c *bitConn) Prepare(query string) (driver.Stmt, error) {
	return wrapStmt(c.fullConn.Prepare(query))
}

func wrapStmt(s driver.Stmt, err error) (driver.Stmt, error) {
	if fs, ok := s.(fullStmt); ok && err == nil {
		return &bitStmt{fs}, nil
	}
	return s, err
}

type bitStmt struct{ fullStmt }

func (s *bitStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	r, err := s.fullStmt.QueryContext(ctx, args)
	return wrapRows(r), err
}

func (s *bitStmt) Query(args []driver.Value) (driver.Rows, error) { //nolint:staticcheck // part of driver.Stmt
	r, err := s.fullStmt.Query(args) //nolint:staticcheck
	return wrapRows(r), err
}

func wrapRows(r driver.Rows) driver.Rows {
	if fr, ok := r.(fullRows); ok {
		return &bitRows{fullRows: fr}
	}
	return r
}

// bitRows converts the BIT columns of each row.
type bitRows struct {
	fullRows
	bits []int // indexes of BIT columns; nil until known
}

func (r *bitRows) Next(dest []driver.Value) error {
	if err := r.fullRows.Next(dest); err != nil {
		return err
	}
	if r.bits == nil {
		r.bits = []int{}
		for i := range dest {
			if r.ColumnTypeDatabaseTypeName(i) == "BIT" {
				r.bits = append(r.bits, i)
			}
		}
	}
	for _, i := range r.bits {
		if b, ok := dest[i].([]byte); ok {
			dest[i] = bitValue(b)
		}
	}
	return nil
}

func (r *bitRows) NextResultSet() error {
	r.bits = nil
	return r.fullRows.NextResultSet()
}

// bitValue reads a BIT value's big-endian bytes as an unsigned integer.
func bitValue(b []byte) any {
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	if u > math.MaxInt64 {
		return u
	}
	return int64(u)
}
