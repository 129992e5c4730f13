package topology

import (
	"fmt"
	"slices"

	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/record"
	"github.com/intercloud/intercloud/replicate"
	"github.com/intercloud/intercloud/replicate/rowfilter"
	"github.com/intercloud/intercloud/sqldb"
)

// Mapping returns the forward stream's table mapping of the topology's
// replication section. A glob in replication.tables never selects the
// platform's own records table (it lives in every cloud's database): name
// it to replicate it.
func Mapping(cfg *config.Config) (*replicate.Mapping, error) {
	r := cfg.Replication
	m := &replicate.Mapping{Include: r.Tables, Exclude: ownExcluded(cfg)}
	for i, mp := range r.Mappings {
		rule := replicate.Rule{Table: mp.Table, Rename: mp.Rename, Columns: mp.Columns, ExcludeColumns: mp.ExcludeColumns}
		for col, name := range mp.Types {
			t, err := sqldb.ParseType(name)
			if err != nil {
				return nil, fmt.Errorf("replication.mappings[%d].types.%s: %w", i, col, err)
			}
			if rule.Types == nil {
				rule.Types = map[string]sqldb.Type{}
			}
			rule.Types[col] = t
		}
		if mp.Filter != "" {
			f, err := rowfilter.Parse(mp.Filter)
			if err != nil {
				return nil, fmt.Errorf("replication.mappings[%d].filter: %w", i, err)
			}
			rule.Filter = f
		}
		m.Rules = append(m.Rules, rule)
	}
	return m, nil
}

// ReverseMapping returns the reverse stream's table mapping: the same
// tables without the mapped ones, copied unchanged.
func ReverseMapping(cfg *config.Config) *replicate.Mapping {
	r := cfg.Replication
	m := &replicate.Mapping{Include: r.Tables, Exclude: ownExcluded(cfg)}
	for _, mp := range r.Mappings {
		m.Exclude = append(m.Exclude, mp.Table)
	}
	return m
}

// ReverseReplicatedInserts returns the inserts the reverse stream's source
// may leave out before reading them: the records table's rows whose
// _origin is the forward stream's source cloud (only that cloud's API
// sets it, so on the reverse stream's source only the forward stream
// inserts them). On PostgreSQL this is the reverse stream's publication
// row filter (package pgsrc); the transaction skip (SkipReplicated) stays
// the guarantee against echo. Nil without a records table.
func ReverseReplicatedInserts(cfg *config.Config) *replicate.ReplicatedInserts {
	if cfg.Schema.Table == "" {
		return nil
	}
	return &replicate.ReplicatedInserts{Table: cfg.Schema.Table, Column: record.ColOrigin, Value: cfg.Replication.From}
}

// ownExcluded is replication.exclude, plus the records table when no
// plain name in replication.tables names it.
func ownExcluded(cfg *config.Config) []string {
	ex := slices.Clone(cfg.Replication.Exclude)
	own := cfg.Schema.Table
	if own != "" && !slices.Contains(cfg.Replication.Tables, own) {
		ex = append(ex, own)
	}
	return ex
}

// SourceMode is how the topology reads db's changes (replication.source,
// else the database's log where this binary has a log source for it,
// poll otherwise).
func SourceMode(cfg *config.Config, db *sqldb.DB) string {
	return cfg.Replication.SourceMode(replicate.HasLogSource(db.Dialect.Name()))
}
