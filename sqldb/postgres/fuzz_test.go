package postgres_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/intercloud/intercloud/sqldb/postgres"
)

// FuzzConfigFromURL: no URL makes the conversion panic or put the password
// into an error.
func FuzzConfigFromURL(f *testing.F) {
	f.Add("postgres://u:PASSWORD@h:5432/db?sslmode=disable")
	f.Add("postgresql://u:PASSWORD@h/db?sslmode=bogus")
	f.Add("postgres://u:PASSWORD@h:99999/db?connect_timeout=x")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return
		}
		pass, ok := u.User.Password()
		_, err = postgres.ConfigFromURL(u)
		if err != nil && ok && len(pass) >= 4 && !strings.Contains(u.RawQuery, pass) && !strings.Contains(u.Host, pass) && strings.Contains(err.Error(), pass) {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
}
