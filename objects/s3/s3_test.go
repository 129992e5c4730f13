package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	"github.com/intercloud/intercloud/objects/objectstest"
	s3 "github.com/intercloud/intercloud/objects/s3"
)

// TestMain keeps the default credential chain on this machine: no
// instance-metadata calls, no real ~/.aws files, no credentials from the
// caller's environment.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "s3-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
	} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bucketURL is an s3:// URL for the peer with static credentials.
func bucketURL(s *peers.S3, bucket string) string {
	return s.BucketURL(bucket)
}

func openURL(t *testing.T, raw string) *objects.Bucket {
	t.Helper()
	b, err := objects.Open(t.Context(), raw, slog.Default())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestS3 runs everything that needs the server, which starts once.
func TestS3(t *testing.T) {
	s := peers.StartS3(t)
	s.CreateBucket(t, "conformance")
	s.CreateBucket(t, "creds")

	t.Run("Conformance", func(t *testing.T) {
		objectstest.RunConformance(t, func(t *testing.T) *objects.Bucket {
			return openURL(t, bucketURL(s, "conformance"))
		})
	})

	t.Run("TypedConstructor", func(t *testing.T) {
		bb, err := s3.OpenBucket(t.Context(), "creds", s3.Options{
			Region: s.Region, Endpoint: s.Endpoint, UsePathStyle: true,
			AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		b := objects.NewBucket(bb, "s3://creds", nil)
		defer b.Close()
		roundTrip(t, b, "typed")
		var c *awss3.Client
		if !b.As(&c) || c == nil {
			t.Errorf("As(*s3.Client) failed")
		}
	})

	t.Run("EnvCredentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
		t.Setenv("AWS_REGION", s.Region)
		b := openURL(t, "s3://creds?use_path_style=true&endpoint="+url.QueryEscape(s.Endpoint))
		roundTrip(t, b, "env")
	})

	t.Run("ProfileCredentials", func(t *testing.T) {
		dir := t.TempDir()
		creds := filepath.Join(dir, "credentials")
		cfg := filepath.Join(dir, "config")
		if err := os.WriteFile(creds, fmt.Appendf(nil, "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[intercloud]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s.AccessKey, s.SecretKey), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte("[profile intercloud]\nregion = us-east-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
		t.Setenv("AWS_CONFIG_FILE", cfg)
		b := openURL(t, "s3://creds?profile=intercloud&use_path_style=true&endpoint="+url.QueryEscape(s.Endpoint))
		roundTrip(t, b, "profile")
		// The default profile holds wrong keys: the profile was what worked.
		b2 := openURL(t, "s3://creds?region=us-east-1&use_path_style=true&endpoint="+url.QueryEscape(s.Endpoint))
		if err := b2.Put(t.Context(), "default-profile", []byte("x"), nil); err == nil {
			t.Errorf("put with the default profile's wrong keys succeeded")
		}
		// A missing profile is a clear error at open.
		if _, err := objects.Open(t.Context(), "s3://creds?profile=nope&endpoint="+url.QueryEscape(s.Endpoint), nil); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("open with a missing profile: %v", err)
		}
	})

	t.Run("WrongSecretNotInError", func(t *testing.T) {
		const secret = "Sup3rSecretValue-do-not-print"
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		raw := strings.Replace(bucketURL(s, "creds"), url.QueryEscape(s.SecretKey), secret, 1)
		b, err := objects.Open(t.Context(), raw, log)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer b.Close()
		err = b.Put(t.Context(), "k", []byte("x"), nil)
		if err == nil {
			t.Fatal("put with a wrong secret succeeded")
		}
		_, _, gerr := b.Get(t.Context(), "k")
		for _, e := range []error{err, gerr} {
			if e != nil && strings.Contains(e.Error(), secret) {
				t.Errorf("error contains the secret: %v", e)
			}
		}
		if strings.Contains(logs.String(), secret) || strings.Contains(b.Name(), secret) {
			t.Errorf("logs or name contain the secret")
		}
		t.Logf("error with a wrong secret: %v", err)
	})

	t.Run("UnreachableSecretNotInError", func(t *testing.T) {
		const secret = "An0therSecret-never-printed"
		raw := "s3://b?region=us-east-1&use_path_style=true&endpoint=" + url.QueryEscape("http://127.0.0.1:"+fmt.Sprint(peers.FreePort(t))) +
			"&access_key_id=AKIDTEST&secret_access_key=" + secret
		b := openURL(t, raw)
		ctx, cancel := context.WithTimeout(t.Context(), 20e9)
		defer cancel()
		err := b.Put(ctx, "k", []byte("x"), nil)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("put to a closed port: %v", err)
		}
	})

	t.Run("ListStartsAfter", func(t *testing.T) {
		// Every request goes through a proxy that counts the listings.
		target, err := url.Parse(s.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		var lists atomic.Int64
		proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			if r.In.Method == http.MethodGet && r.In.URL.Query().Get("list-type") == "2" {
				lists.Add(1)
			}
			r.SetURL(target)
			r.Out.Host = r.In.Host // as signed
		}}
		srv := httptest.NewServer(proxy)
		defer srv.Close()
		s.CreateBucket(t, "after")
		b := openURL(t, strings.Replace(bucketURL(s, "after"), url.QueryEscape(s.Endpoint), url.QueryEscape(srv.URL), 1))
		var keys []string
		for i := range 1100 {
			keys = append(keys, fmt.Sprintf("p/%05d", i))
			if err := b.Put(t.Context(), keys[i], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			after string
			want  []string
			lists int64
		}{
			// The store starts after the key: one page, not two.
			{"p/01049", keys[1050:], 1},
			{"p/00999", keys[1000:], 1},
			// A start key the driver escapes on the wire is not sent:
			// the listing starts at the prefix and the keys up to it are
			// dropped here.
			{"p/../x", keys, 2},
			{"p/0104\x01", keys[1040:], 2},
		} {
			lists.Store(0)
			var got []string
			if err := b.ListKeysAfter(t.Context(), "p/", tc.after, func(k string) error {
				got = append(got, k)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("after %q: %d keys from %q, want %d", tc.after, len(got), got[0], len(tc.want))
			}
			if n := lists.Load(); n != tc.lists {
				t.Errorf("after %q: %d list requests, want %d", tc.after, n, tc.lists)
			}
		}
	})

	t.Run("MissingBucket", func(t *testing.T) {
		b := openURL(t, bucketURL(s, "no-such-bucket"))
		if err := b.Put(t.Context(), "k", []byte("x"), nil); err == nil {
			t.Errorf("put into a missing bucket succeeded")
		}
		if _, _, err := b.Get(t.Context(), "k"); !errors.Is(err, objects.ErrNotFound) {
			t.Errorf("get from a missing bucket: %v, want ErrNotFound", err)
		}
	})
}

func roundTrip(t *testing.T, b *objects.Bucket, key string) {
	t.Helper()
	if err := b.Put(t.Context(), key, []byte("payload "+key), &objects.PutOptions{Metadata: map[string]string{"traceparent": "t"}}); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, a, err := b.Get(t.Context(), key)
	if err != nil || string(got) != "payload "+key || a.Metadata["traceparent"] != "t" {
		t.Fatalf("get: %q %+v %v", got, a, err)
	}
}

func TestParseURL(t *testing.T) {
	const secret = "s3cr3t-value-xyz"
	for _, tc := range []struct {
		name, url string
		want      s3.Options
		bucket    string
		err       string
	}{
		{name: "minimal", url: "s3://b", bucket: "b"},
		{name: "all", url: "s3://my-bucket?region=eu-west-1&endpoint=http://127.0.0.1:7070&use_path_style=true&profile=p&access_key_id=AK&secret_access_key=" + secret + "&session_token=tok&request_checksum_calculation=when_required&response_checksum_validation=when_supported",
			bucket: "my-bucket",
			want: s3.Options{Region: "eu-west-1", Endpoint: "http://127.0.0.1:7070", UsePathStyle: true, Profile: "p",
				AccessKeyID: "AK", SecretAccessKey: secret, SessionToken: "tok",
				RequestChecksumCalculation: "when_required", ResponseChecksumValidation: "when_supported"}},
		{name: "legacy path style", url: "s3://b?s3ForcePathStyle=1", bucket: "b", want: s3.Options{UsePathStyle: true}},
		{name: "no bucket", url: "s3://?region=x", err: "bucket name is required"},
		{name: "path", url: "s3://b/some/path", err: "names a bucket only"},
		{name: "unknown param", url: "s3://b?regoin=x", err: `unknown URL parameter "regoin"`},
		{name: "twice", url: "s3://b?region=a&region=b", err: "region given 2 times"},
		{name: "bad bool", url: "s3://b?use_path_style=yes", err: "use_path_style must be true or false"},
		{name: "bad endpoint", url: "s3://b?endpoint=ftp://x", err: "endpoint must be an http or https URL"},
		{name: "endpoint with user", url: "s3://b?endpoint=" + url.QueryEscape("http://u:"+secret+"@h"), err: "endpoint must not hold credentials"},
		{name: "secret alone", url: "s3://b?secret_access_key=" + secret, err: "must be given together"},
		{name: "key alone", url: "s3://b?access_key_id=AK", err: "must be given together"},
		{name: "token alone", url: "s3://b?session_token=" + secret, err: "session_token needs"},
		{name: "bad checksum", url: "s3://b?request_checksum_calculation=always", err: "request_checksum_calculation must be"},
		{name: "user info", url: "s3://AK:" + secret + "@b", err: "user part"},
		{name: "wrong scheme", url: "gs://b", err: "scheme must be"},
		{name: "bad query", url: "s3://b?a=%zz&secret_access_key=" + secret, err: "malformed query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			bucket, opts, err := s3.ParseURL(u)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error contains the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bucket != tc.bucket || opts != tc.want {
				t.Errorf("got %q %+v, want %q %+v", bucket, opts, tc.bucket, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	const secret = "open-secret-123456"
	for _, raw := range []string{
		"s3://b?secret_access_key=" + secret,
		"s3://b?bogus=1&secret_access_key=" + secret + "&access_key_id=a",
		"s3://b?access_key_id=a&secret_access_key=" + secret, // no region anywhere
	} {
		_, err := objects.Open(t.Context(), raw, nil)
		if err == nil {
			t.Errorf("open %s succeeded", raw)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("open error contains the secret: %v", err)
		}
	}
	if _, err := s3.OpenBucket(t.Context(), "", s3.Options{Region: "us-east-1"}); err == nil {
		t.Error("empty bucket name accepted")
	}
}

// FuzzParseURL checks that no URL panics the parser and that a secret in
// the query never reaches an error message.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"region=us-east-1",
		"endpoint=http://127.0.0.1:1&use_path_style=true",
		"access_key_id=a",
		"bogus=1",
		"use_path_style=maybe",
		"endpoint=%zz",
		"request_checksum_calculation=x",
	} {
		f.Add("bucket", s)
	}
	const secret = "FuzzSecretMarker9876"
	f.Fuzz(func(t *testing.T, host, query string) {
		u, err := url.Parse("s3://" + host + "?secret_access_key=" + secret + "&" + query)
		if err != nil {
			return
		}
		bucket, opts, err := s3.ParseURL(u)
		if err != nil {
			if strings.Contains(err.Error(), secret) && !strings.Contains(host+query, secret) {
				t.Fatalf("error contains the secret: %v", err)
			}
			return
		}
		if bucket != u.Host || bucket == "" {
			t.Fatalf("bucket %q from host %q", bucket, u.Host)
		}
		if opts.Validate() != nil {
			t.Fatalf("accepted options do not validate")
		}
	})
}

// TestStoreDownIsUnavailable: a call to a store that refuses connections
// fails with objects.ErrUnavailable, so callers retry it.
func TestStoreDownIsUnavailable(t *testing.T) {
	port := peers.FreePort(t)
	b, err := objects.Open(t.Context(), fmt.Sprintf("s3://down?region=us-east-1&endpoint=http://127.0.0.1:%d&use_path_style=true&access_key_id=a&secret_access_key=b", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, _, err = b.Get(t.Context(), "raw/x.ndjson")
	if !errors.Is(err, objects.ErrUnavailable) || errors.Is(err, objects.ErrNotFound) {
		t.Fatalf("get from a store that is down: %v", err)
	}
}
