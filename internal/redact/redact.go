// Package redact keeps credentials out of logs, errors and status output:
// passwords in URLs and DSNs, secret-looking query parameters, and the
// values of attributes whose name says they are secret. Every package
// masks through it, so one set of rules decides what is a secret.
package redact

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password or a secret query value.
const Mask = "xxxxx"

// secretParams are substrings of query parameter names whose values are
// secrets (secret_key, X-Amz-Signature's sig, AccountKey, sas_token, a
// connection string ...).
var secretParams = []string{"password", "passwd", "secret", "token", "sig", "key", "credential", "connection"}

// secretNames are substrings of attribute and header names whose values are
// secrets. It is narrower than secretParams: a log attribute named "key"
// is an object key, not a credential.
var secretNames = []string{"password", "passwd", "secret", "token", "authorization", "api_key", "api-key", "apikey", "private_key", "credential"}

// SecretName reports whether an attribute or header name (case-insensitive)
// names a secret, so its whole value must be hidden.
func SecretName(name string) bool {
	k := strings.ToLower(name)
	if k == "pwd" {
		return true
	}
	for _, s := range secretNames {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// secretParam reports whether a query parameter's value is a secret.
func secretParam(name string) bool {
	k := strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// URL returns raw with its password and the values of its secret-looking
// query parameters replaced by Mask, for logs and errors. A string that is
// not a URL comes back as "(unparseable URL)": it might be a secret.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		if secretParam(k) {
			q.Set(k, Mask)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// URLError returns err without the URL that a *url.Error in it carries
// (the URL may hold a password): "op: cause". Other errors come back as
// they are.
func URLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Password returns msg with every occurrence of pass, also in its query-
// and path-escaped forms, replaced by Mask. Drivers use it on the errors of
// client libraries that quote their connection string.
func Password(msg, pass string) string {
	if pass == "" {
		return msg
	}
	for _, p := range []string{pass, url.QueryEscape(pass), url.PathEscape(pass)} {
		msg = strings.ReplaceAll(msg, p, Mask)
	}
	return msg
}

// PasswordError returns err with pass masked in its message (as Password
// does) while errors.Is and errors.As still reach err and its causes, so a
// caller can tell a refused login from an unreachable server.
func PasswordError(err error, pass string) error {
	if err == nil {
		return nil
	}
	return &masked{msg: Password(err.Error(), pass), err: err}
}

type masked struct {
	msg string
	err error
}

func (m *masked) Error() string { return m.msg }
func (m *masked) Unwrap() error { return m.err }

// URLPassword is Password with the password of u (none: msg unchanged).
func URLPassword(msg string, u *url.URL) string {
	if u == nil || u.User == nil {
		return msg
	}
	pass, _ := u.User.Password()
	return Password(msg, pass)
}

var (
	// scheme://user:password@ — the password is anything up to the last
	// '@' before the host.
	urlPasswordRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://[^\s/?#@:]*:)([^\s/?#]*)@`)
	// Go MySQL DSN: user:password@tcp(host)/db
	dsnPasswordRE = regexp.MustCompile(`(?i)(^|[\s"'=(])([^\s:/@"'=(]+:)([^\s/]*)@(tcp|unix)\(`)
	// ?secret=..., &sig=... in URLs.
	queryParamRE = regexp.MustCompile(`(?i)([?&;][a-z0-9_\-]*(?:` + strings.Join(secretParams, "|") + `)[a-z0-9_\-]*=)([^&\s#"';]*)`)
)

// Text masks the passwords and secret query parameters of every URL and
// DSN found in free text (a log message, an error from a client library).
func Text(s string) string {
	s = urlPasswordRE.ReplaceAllString(s, "${1}"+Mask+"@")
	s = dsnPasswordRE.ReplaceAllString(s, "${1}${2}"+Mask+"@${4}(")
	s = queryParamRE.ReplaceAllString(s, "${1}"+Mask)
	return s
}
