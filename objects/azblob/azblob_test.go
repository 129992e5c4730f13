package azblob_test

import (
	"bytes"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	azsdk "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/intercloud/intercloud/internal/peers"
	"github.com/intercloud/intercloud/objects"
	azblob "github.com/intercloud/intercloud/objects/azblob"
	"github.com/intercloud/intercloud/objects/objectstest"
)

// TestMain keeps the caller's Azure settings out of the tests.
func TestMain(m *testing.M) {
	for _, k := range []string{
		"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
		"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGEBLOB_CONNECTIONSTRING",
		"AZURE_STORAGE_DOMAIN", "AZURE_STORAGE_PROTOCOL", "AZURE_STORAGE_IS_LOCAL_EMULATOR",
	} {
		os.Unsetenv(k)
	}
	os.Exit(m.Run())
}

// sharedKeyURL is an azblob:// URL for the emulator with a shared key.
func sharedKeyURL(a *peers.Azurite, name string, create bool) string {
	if create {
		return a.ContainerURL(name) + "&create=true"
	}
	return a.ContainerURL(name)
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

// TestAzblob runs everything that needs the emulator, which starts once.
func TestAzblob(t *testing.T) {
	a := peers.StartAzurite(t)

	t.Run("Conformance", func(t *testing.T) {
		raw := sharedKeyURL(a, "conformance", true)
		objectstest.RunConformance(t, func(t *testing.T) *objects.Bucket { return openURL(t, raw) })
	})

	t.Run("NoCreate", func(t *testing.T) {
		b := openURL(t, sharedKeyURL(a, "not-created", false))
		if err := b.Put(t.Context(), "k", []byte("x"), nil); err == nil {
			t.Errorf("put into a container that was not created succeeded")
		}
		// create=true is idempotent.
		openURL(t, sharedKeyURL(a, "twice", true))
		roundTrip(t, openURL(t, sharedKeyURL(a, "twice", true)), "k")
	})

	t.Run("TypedConstructor", func(t *testing.T) {
		bb, err := azblob.OpenBucket(t.Context(), "typed", azblob.Options{
			ServiceURL: a.BlobEndpoint, Account: a.Account, AccountKey: a.Key, Create: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		b := objects.NewBucket(bb, "azblob://typed", nil)
		defer b.Close()
		roundTrip(t, b, "typed")
		var c *container.Client
		if !b.As(&c) || c == nil {
			t.Errorf("As(*container.Client) failed")
		}
	})

	t.Run("ConnectionStringParam", func(t *testing.T) {
		b := openURL(t, "azblob://cs-param?create=true&connection_string="+url.QueryEscape(a.ConnectionString))
		roundTrip(t, b, "cs")
	})

	t.Run("ConnectionStringEnv", func(t *testing.T) {
		t.Setenv("AZURE_STORAGE_CONNECTION_STRING", a.ConnectionString)
		roundTrip(t, openURL(t, "azblob://cs-env?create=true"), "cs")
	})

	t.Run("SharedKeyEnv", func(t *testing.T) {
		t.Setenv("AZURE_STORAGE_ACCOUNT", a.Account)
		t.Setenv("AZURE_STORAGE_KEY", a.Key)
		roundTrip(t, openURL(t, "azblob://key-env?create=true&service_url="+url.QueryEscape(a.BlobEndpoint)), "k")
		// The same through domain/protocol, as gocloud builds emulator URLs.
		u, _ := url.Parse(a.BlobEndpoint)
		roundTrip(t, openURL(t, "azblob://key-env?protocol=http&localemu=true&domain="+url.QueryEscape(u.Host)), "k2")
	})

	t.Run("SASToken", func(t *testing.T) {
		cred, err := azsdk.NewSharedKeyCredential(a.Account, a.Key)
		if err != nil {
			t.Fatal(err)
		}
		// The container must exist: a SAS for objects cannot create it.
		openURL(t, sharedKeyURL(a, "sas", true))
		qp, err := sas.AccountSignatureValues{
			Protocol:      sas.ProtocolHTTPSandHTTP,
			ExpiryTime:    time.Now().Add(time.Hour),
			Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Create: true, List: true, Delete: true}).String(),
			ResourceTypes: (&sas.AccountResourceTypes{Container: true, Object: true}).String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		token := qp.Encode()
		b := openURL(t, "azblob://sas?service_url="+url.QueryEscape(a.BlobEndpoint)+"&sas_token="+url.QueryEscape(token))
		roundTrip(t, b, "sas")
		// A tampered signature fails without printing the token.
		sig := qp.Signature()
		bad := strings.Replace(token, url.QueryEscape(sig), url.QueryEscape("AAAA"+sig[4:]), 1)
		b2 := openURL(t, "azblob://sas?service_url="+url.QueryEscape(a.BlobEndpoint)+"&sas_token="+url.QueryEscape(bad))
		err = b2.Put(t.Context(), "k", []byte("x"), nil)
		if err == nil {
			t.Fatal("put with a tampered SAS succeeded")
		}
		if strings.Contains(err.Error(), sig[4:]) {
			t.Errorf("error contains the SAS signature: %v", err)
		}
	})

	t.Run("WrongKeyNotInError", func(t *testing.T) {
		secret := "c2VjcmV0LWtleS1uZXZlci1wcmludGVk" + strings.Repeat("QUFB", 10)
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		raw := strings.Replace(sharedKeyURL(a, "conformance", false), url.QueryEscape(a.Key), url.QueryEscape(secret), 1)
		b, err := objects.Open(t.Context(), raw, log)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		perr := b.Put(t.Context(), "k", []byte("x"), nil)
		if perr == nil {
			t.Fatal("put with a wrong key succeeded")
		}
		_, _, gerr := b.Get(t.Context(), "k")
		for _, e := range []error{perr, gerr} {
			if e != nil && strings.Contains(e.Error(), secret) {
				t.Errorf("error contains the key: %v", e)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain the key")
		}
		t.Logf("error with a wrong key: %.300v", perr)
		// A malformed connection string is refused without echoing it.
		_, err = objects.Open(t.Context(), "azblob://x12?connection_string="+url.QueryEscape("AccountKey="+secret), nil)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("malformed connection string: %v", err)
		}
	})
}

func TestParseURL(t *testing.T) {
	const secret = "c2VjcmV0LXZhbHVl"
	for _, tc := range []struct {
		name, url string
		want      azblob.Options
		container string
		err       string
	}{
		{name: "minimal", url: "azblob://results", container: "results"},
		{name: "all endpoint", url: "azblob://results?storage_account=acct&domain=blob.core.usgovcloudapi.net&protocol=https&localemu=false&create=true",
			container: "results", want: azblob.Options{Account: "acct", Domain: "blob.core.usgovcloudapi.net", Protocol: "https", Create: true}},
		{name: "service url and key", url: "azblob://c1?service_url=http://127.0.0.1:1/devstoreaccount1&storage_account=devstoreaccount1&account_key=" + secret,
			container: "c1", want: azblob.Options{ServiceURL: "http://127.0.0.1:1/devstoreaccount1", Account: "devstoreaccount1", AccountKey: secret}},
		{name: "connection string", url: "azblob://c1?connection_string=" + url.QueryEscape("AccountName=a;AccountKey="+secret),
			container: "c1", want: azblob.Options{ConnectionString: "AccountName=a;AccountKey=" + secret}},
		{name: "sas", url: "azblob://c1?sas_token=" + url.QueryEscape("sv=1&sig="+secret), container: "c1", want: azblob.Options{SASToken: "sv=1&sig=" + secret}},
		{name: "no container", url: "azblob://?storage_account=a", err: "container name is required"},
		{name: "path", url: "azblob://c/p", err: "names a container only"},
		{name: "unknown", url: "azblob://c?acount=x", err: `unknown URL parameter "acount"`},
		{name: "twice", url: "azblob://c?domain=a&domain=b", err: "domain given 2 times"},
		{name: "bad bool", url: "azblob://c?create=yes&account_key=" + secret, err: "create must be true or false"},
		{name: "user", url: "azblob://a:" + secret + "@c", err: "user part"},
		{name: "bad query", url: "azblob://c?x=%zz&account_key=" + secret, err: "malformed query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			c, opts, err := azblob.ParseURL(u)
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
			if c != tc.container || opts != tc.want {
				t.Errorf("got %q %+v, want %q %+v", c, opts, tc.container, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	const secret = "b3Blbi1zZWNyZXQtdmFsdWU="
	for _, tc := range []struct{ url, err string }{
		{"azblob://abc?storage_account=a&account_key=" + secret + "&sas_token=x", "only one of"},
		{"azblob://abc?connection_string=x&service_url=http://h", "names its own endpoint"},
		{"azblob://abc?account_key=" + secret, "no account"},
		{"azblob://abc?storage_account=a&account_key=not*base64", "not a valid base64"},
		{"azblob://abc?service_url=ftp://h&account_key=" + secret, "service_url must be"},
		{"azblob://abc?service_url=" + url.QueryEscape("http://u:"+secret+"@h") + "&account_key=k", "must not hold credentials"},
		{"azblob://abc?storage_account=a&protocol=gopher", "protocol must be"},
		{"azblob://Bad_Name?storage_account=a&account_key=" + secret, "invalid container name"},
		{"azblob://a--b?storage_account=a&account_key=" + secret, "invalid container name"},
		{"azblob://results", "no account"},
	} {
		_, err := objects.Open(t.Context(), tc.url, nil)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("open %s: %v, want %q", tc.url, err, tc.err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("open error contains the secret: %v", err)
		}
	}
}

// FuzzParseURL checks that no URL panics the parser or the option checks
// and that a secret in the query never reaches an error message.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"storage_account=a",
		"service_url=http://127.0.0.1:1/devstoreaccount1&create=true",
		"connection_string=AccountName%3Da",
		"localemu=maybe",
		"domain=localhost:1&protocol=http",
		"x=%zz",
	} {
		f.Add("results", s)
	}
	const secret = "RnV6elNlY3JldE1hcmtlcg=="
	f.Fuzz(func(t *testing.T, host, query string) {
		u, err := url.Parse("azblob://" + host + "?account_key=" + url.QueryEscape(secret) + "&" + query)
		if err != nil {
			return
		}
		name, opts, err := azblob.ParseURL(u)
		if err == nil {
			if name != u.Host || name == "" {
				t.Fatalf("container %q from host %q", name, u.Host)
			}
			err = opts.Validate()
		}
		if err != nil && strings.Contains(err.Error(), secret) && !strings.Contains(host+query, secret) {
			t.Fatalf("error contains the secret: %v", err)
		}
	})
}
