package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"mysql://app:secret@h:3306/db":                  "mysql://app:xxxxx@h:3306/db",
		"s3://b?region=x&secret_key=abc":                "s3://b?region=x&secret_key=xxxxx",
		"azblob://c?connection_string=AccountKey%3Dabc": "azblob://c?connection_string=xxxxx",
		"https://a.blob.core.windows.net/c?sig=abc":     "https://a.blob.core.windows.net/c?sig=xxxxx",
		"file:///tmp/x":                                 "file:///tmp/x",
		"postgres://app@h/db?sslmode=disable":           "postgres://app@h/db?sslmode=disable",
		"mysql://a:b@[::1":                              "(unparseable URL)",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLError(t *testing.T) {
	var err error
	for _, bad := range []string{"mysql://app:hunter2@[::1"} { // malformed, with a password
		_, err = url.Parse(bad)
	}
	got := URLError(err)
	if strings.Contains(got.Error(), "hunter2") || !strings.HasPrefix(got.Error(), "parse: ") {
		t.Fatalf("URLError = %q", got)
	}
	var ue *url.Error
	if errors.As(got, &ue) {
		t.Fatal("the *url.Error (and its URL) is still reachable")
	}
	plain := errors.New("x")
	if URLError(plain) != plain {
		t.Fatal("a plain error changed")
	}
}

func TestPassword(t *testing.T) {
	const pass = "p@ss w/rd"
	msg := "dial app:" + pass + "@h failed; url " + url.QueryEscape(pass) + " path " + url.PathEscape(pass)
	got := Password(msg, pass)
	for _, p := range []string{pass, url.QueryEscape(pass), url.PathEscape(pass)} {
		if strings.Contains(got, p) {
			t.Fatalf("Password left %q in %q", p, got)
		}
	}
	if Password("no secret", "") != "no secret" {
		t.Fatal("an empty password changed the message")
	}
	u, _ := url.Parse("postgres://app:" + url.PathEscape(pass) + "@h/db")
	if got := URLPassword("conn "+pass, u); strings.Contains(got, pass) {
		t.Fatalf("URLPassword = %q", got)
	}
	if got := URLPassword("m", nil); got != "m" {
		t.Fatalf("URLPassword(nil) = %q", got)
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"open mysql://app:s3cr3t@h/app now":          "open mysql://app:xxxxx@h/app now",
		"dsn app:s3cr3t@tcp(127.0.0.1:3306)/app":     "dsn app:xxxxx@tcp(127.0.0.1:3306)/app",
		"get https://a/c?sv=1&sig=s3cr3t&se=2":       "get https://a/c?sv=1&sig=xxxxx&se=2",
		"postgres://app:p@s3cr3t@h/db":               "postgres://app:xxxxx@h/db",
		"plain user@example.com https://e.com/a?b=c": "plain user@example.com https://e.com/a?b=c",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "DB_Password": true, "pwd": true, "accessToken": true, "Authorization": true,
		"APIKey": true, "credentials": true, "client_secret": true,
		"key": false, "idempotency_key": false, "keys": false, "url": false, "email": false,
	} {
		if got := SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPasswordError(t *testing.T) {
	cause := &url.Error{Op: "dial", URL: "x", Err: errors.New("login failed for hunter2")}
	err := fmt.Errorf("db: %w", PasswordError(cause, "hunter2"))
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "login failed for "+Mask) {
		t.Fatalf("message %q", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || ue != cause {
		t.Fatal("the cause is not reachable")
	}
	if PasswordError(nil, "x") != nil {
		t.Fatal("nil error")
	}
}
