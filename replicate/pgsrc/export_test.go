package pgsrc

// InsertsReceived is the number of insert messages s's streams received.
func InsertsReceived(s *Source) int64 { return s.inserts.Load() }

// Connect is connect, for the tests of the replication connection.
var Connect = connect
