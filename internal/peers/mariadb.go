package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a running MariaDB server of its own, with the binary log on
// (ROW format, FULL row image, FULL row metadata, server_id=1), a database
// "app" and a user app/secret that has ALL on app.* and the grants change
// data capture needs (SELECT, RELOAD, REPLICATION SLAVE, REPLICATION
// CLIENT, BINLOG MONITOR on *.*). root has no password.
type MariaDB struct {
	Port int    // TCP port on 127.0.0.1
	Dir  string // holds my.cnf, data/, binlog/, run/, tmp/ and error.log

	tools    mariadbToolset
	cnf      string
	tls      *TLSFiles
	settings string // MariaDBSettingsEnv's lines for my.cnf

	mu   sync.Mutex
	proc *proc // nil while stopped
}

// MariaDB's fixed credentials.
const (
	mariaDBUser     = "app"
	mariaDBPassword = "secret"
	mariaDBDatabase = "app"
)

// StartMariaDB initialises and starts a MariaDB instance in a fresh
// temporary directory on a free loopback port, and stops it when the test
// ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	return startMariaDB(t, nil)
}

// StartMariaDBTLS is StartMariaDB with a server that speaks TLS with f's
// certificate and refuses TCP connections without TLS
// (require_secure_transport); with f.CA set it also asks clients for a
// certificate from that CA.
func StartMariaDBTLS(t testing.TB, f TLSFiles) *MariaDB {
	t.Helper()
	return startMariaDB(t, &f)
}

func startMariaDB(t testing.TB, f *TLSFiles) *MariaDB {
	t.Helper()
	if err := Install(t.Context(), "mariadb"); err != nil {
		unavailable(t, "peers: mariadb: %v", err)
	}
	tools, err := mariadbTools()
	if err != nil {
		unavailable(t, "peers: mariadb: %v", err)
	}
	settings, err := settingsLines(MariaDBSettingsEnv)
	if err != nil {
		t.Fatalf("peers: mariadb: %v", err)
	}
	m := &MariaDB{Port: FreePort(t), Dir: t.TempDir(), tools: tools, tls: f, settings: settings}
	m.cnf = filepath.Join(m.Dir, "my.cnf")
	if err := m.initialise(t.Context()); err != nil {
		unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		if err := m.stop(syscall.SIGTERM); err != nil {
			t.Errorf("%v", err)
		}
	})
	if err := m.start(); err != nil {
		unavailable(t, "%v", err)
	}
	if err := m.setup(t.Context()); err != nil {
		t.Fatalf("%v", err)
	}
	return m
}

// initialise writes my.cnf and creates the data directory.
func (m *MariaDB) initialise(ctx context.Context) error {
	for _, d := range []string{"data", "run", "binlog", "tmp"} {
		if err := mkdirs(filepath.Join(m.Dir, d)); err != nil {
			return fmt.Errorf("peers: mariadb: %w", err)
		}
	}
	d := m.Dir
	cnf := fmt.Sprintf(`[mariadbd]
datadir=%[1]s/data
socket=%[1]s/run/mysqld.sock
pid-file=%[1]s/run/mysqld.pid
tmpdir=%[1]s/tmp
bind-address=127.0.0.1
port=%[2]d
user=root
skip-name-resolve
log-error=%[1]s/error.log
server_id=1
log_bin=%[1]s/binlog/mysql-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
%[3]s
%[4]s
[client]
socket=%[1]s/run/mysqld.sock
port=%[2]d
user=root
`, d, m.Port, m.tlsConf(), m.settings)
	if err := os.WriteFile(m.cnf, []byte(cnf), 0o644); err != nil {
		return fmt.Errorf("peers: mariadb: write my.cnf: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ictx, m.tools.installDB,
		"--defaults-file="+m.cnf,
		"--datadir="+filepath.Join(d, "data"),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	)
	cmd.Dir = d
	if err := runLogged(cmd); err != nil {
		return fmt.Errorf("peers: mariadb: install-db: %w\n%s", err, logTail(filepath.Join(d, "error.log")))
	}
	return nil
}

// start runs mariadbd and waits until it answers a ping.
func (m *MariaDB) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return fmt.Errorf("peers: mariadb: already running (pid %d)", m.proc.pid)
	}
	p, err := startProc(procSpec{
		name:    "mariadbd",
		path:    m.tools.server,
		args:    []string{"--defaults-file=" + m.cnf},
		dir:     m.Dir,
		logPath: filepath.Join(m.Dir, "error.log"),
	})
	if err != nil {
		return err
	}
	m.proc = p
	return waitReady(p, readyTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, m.tools.admin, "--defaults-file="+m.cnf, "--connect-timeout=2", "ping").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// CPU returns the CPU time (user + system) mariadbd has used since it
// last started, with every process below it (see cputime.Tree): the
// difference of two readings is what the server spent between them. It
// fails t when the server is not running.
func (m *MariaDB) CPU(t testing.TB) time.Duration {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc.cpu(t)
}

// stop signals mariadbd and waits until it is gone.
func (m *MariaDB) stop(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	err := m.proc.stop(sig, stopTimeout)
	m.proc = nil
	return err
}

// setup creates the app database and user over the local socket as root.
func (m *MariaDB) setup(ctx context.Context) error {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS `" + mariaDBDatabase + "`",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", mariaDBUser, mariaDBPassword),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", mariaDBDatabase, mariaDBUser),
		fmt.Sprintf("GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO '%s'@'%%'", mariaDBUser),
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"FLUSH PRIVILEGES",
	}
	return m.exec(ctx, strings.Join(stmts, ";\n")+";")
}

// exec runs SQL as root over the local socket with the mariadb client.
func (m *MariaDB) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.tools.client, "--defaults-file="+m.cnf, "--batch")
	cmd.Stdin = strings.NewReader(sql)
	if err := runLogged(cmd); err != nil {
		return fmt.Errorf("peers: mariadb: setup: %w", err)
	}
	return nil
}

// DSN returns a go-sql-driver/mysql DSN for user app on database db.
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s?parseTime=true&multiStatements=false",
		mariaDBUser, mariaDBPassword, m.Port, db)
}

// URL returns the project's URL form for user app on database db:
// mysql://app:secret@127.0.0.1:PORT/db.
func (m *MariaDB) URL(db string) string {
	return fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", mariaDBUser, mariaDBPassword, m.Port, db)
}

// RootDSN returns a go-sql-driver/mysql DSN for root (no password, no
// default database) over TCP.
func (m *MariaDB) RootDSN() string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/?parseTime=true&multiStatements=false", m.Port)
}

// Stop shuts the server down with SIGTERM and waits until it has exited.
func (m *MariaDB) Stop(t testing.TB) {
	t.Helper()
	if err := m.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it
// has exited.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	if err := m.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Start starts the server again on the same data directory and port (after
// Stop or Kill) and waits until it is ready.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
}

// Query runs a query as root with the server's own command-line client
// (mariadb --batch --skip-column-names) on database db and returns the
// output's lines: an independent way to read what the server holds.
func (m *MariaDB) Query(t testing.TB, db, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.tools.client, "--defaults-file="+m.cnf, "--batch", "--skip-column-names", "--database="+db, "--execute="+query)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peers: mariadb: %s: %v\n%s", query, err, stderr.String())
	}
	return lines(string(out))
}

// TLSFiles are the PEM files of a server's TLS certificate, its key and the
// CA its clients' certificates must chain to (empty: none asked for).
type TLSFiles struct {
	Cert, Key, CA string
}

// tlsConf is the [mariadbd] lines of TLS.
func (m *MariaDB) tlsConf() string {
	if m.tls == nil {
		return ""
	}
	s := fmt.Sprintf("ssl-cert=%s\nssl-key=%s\nrequire_secure_transport=ON\n", m.tls.Cert, m.tls.Key)
	if m.tls.CA != "" {
		s += fmt.Sprintf("ssl-ca=%s\n", m.tls.CA)
	}
	return s
}
