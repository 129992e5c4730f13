// Package azblob is the objects driver for Azure Blob Storage (and
// Azurite), over gocloud.dev/blob/azureblob and the Azure SDK's azblob.
//
// It registers the scheme "azblob"; the host is the container:
//
//	azblob://CONTAINER?storage_account=NAME                       (https://NAME.blob.core.windows.net, default credential)
//	azblob://CONTAINER?service_url=http://127.0.0.1:10000/devstoreaccount1&create=true
//
// Query parameters (any other is an error):
//
//	service_url        the blob service endpoint; overrides storage_account/domain/protocol/localemu
//	storage_account    account name (else AZURE_STORAGE_ACCOUNT)
//	domain             storage domain (else AZURE_STORAGE_DOMAIN, default blob.core.windows.net)
//	protocol           http or https (else AZURE_STORAGE_PROTOCOL, default https)
//	localemu           true: emulator layout PROTOCOL://DOMAIN/ACCOUNT (else AZURE_STORAGE_IS_LOCAL_EMULATOR);
//	                   implied when domain starts with 127.0.0.1 or localhost
//	connection_string  a storage connection string (it holds the account key: keep such a URL like a password)
//	account_key        shared key for the account (a secret too)
//	sas_token          SAS token appended to the service URL (a secret too)
//	create             true: create the container if it does not exist (real deployments pre-create it)
//
// Credentials, first found wins:
//
//  1. the URL's connection_string, account_key or sas_token;
//  2. AZURE_STORAGE_KEY with the account (when AZURE_STORAGE_ACCOUNT is
//     unset or names the same account);
//  3. AZURE_STORAGE_SAS_TOKEN;
//  4. AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGEBLOB_CONNECTIONSTRING),
//     when the URL names no endpoint (the connection string carries its own);
//  5. azidentity's default credential chain: environment service principal,
//     workload identity, managed identity, Azure CLI, Azure Developer CLI.
//
// No error or log of this package contains a key, token or connection
// string.
package azblob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	azsdk "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"

	"github.com/intercloud/intercloud/objects"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "azblob"

func init() {
	objects.Register(Scheme, open)
	objects.RegisterStatus(responseStatus)
	// The Azure SDK logs through one process-wide listener (none by
	// default); its lines (requests, retries, error answers) go to the
	// process's slog default at debug level, never to stderr.
	azlog.SetEvents(azlog.EventRetryPolicy, azlog.EventResponseError)
	azlog.SetListener(func(ev azlog.Event, msg string) {
		slog.Default().Debug(msg, "library", "azure-sdk-for-go", "event", string(ev))
	})
}

// responseStatus returns the HTTP status of an Azure SDK response error.
func responseStatus(err error) (int, bool) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, true
	}
	return 0, false
}

// Options configure a container. Exactly one way to authenticate is used,
// in this order: ConnectionString, AccountKey, SASToken, Credential, and
// otherwise azidentity's default credential chain.
type Options struct {
	// ServiceURL is the blob service endpoint, e.g.
	// https://NAME.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1.
	// When empty it is built from Account, Domain, Protocol, LocalEmulator.
	ServiceURL string
	// Account is the storage account name.
	Account string
	// Domain is the storage domain (default blob.core.windows.net).
	Domain string
	// Protocol is "https" (default) or "http".
	Protocol string
	// LocalEmulator builds PROTOCOL://DOMAIN/ACCOUNT instead of
	// PROTOCOL://ACCOUNT.DOMAIN.
	LocalEmulator bool

	// ConnectionString authenticates with a storage connection string; it
	// names its own endpoint, so the endpoint fields must be empty.
	ConnectionString string
	// AccountKey authenticates with the account's shared key.
	AccountKey string
	// SASToken is appended to the service URL.
	SASToken string
	// Credential is an Azure AD token credential.
	Credential azcore.TokenCredential

	// Create creates the container if it does not exist.
	Create bool
}

// hasEndpoint reports whether an endpoint field is set.
func (o Options) hasEndpoint() bool {
	return o.ServiceURL != "" || o.Account != "" || o.Domain != "" || o.Protocol != "" || o.LocalEmulator
}

// Validate checks the options without reaching the network. Its errors
// name the field and never include a secret.
func (o Options) Validate() error {
	if o.ConnectionString != "" && o.hasEndpoint() {
		return errors.New("azblob: a connection string names its own endpoint: do not also give service_url, storage_account, domain, protocol or localemu")
	}
	n := 0
	for _, s := range []string{o.ConnectionString, o.AccountKey, o.SASToken} {
		if s != "" {
			n++
		}
	}
	if o.Credential != nil {
		n++
	}
	if n > 1 {
		return errors.New("azblob: give only one of connection_string, account_key, sas_token (and Credential)")
	}
	if o.ServiceURL != "" {
		u, err := url.Parse(o.ServiceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("azblob: service_url must be an http or https URL with a host")
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("azblob: service_url must not hold credentials, a query or a fragment (use sas_token)")
		}
	}
	if o.Protocol != "" && o.Protocol != "http" && o.Protocol != "https" {
		return fmt.Errorf("azblob: protocol must be http or https, not %q", o.Protocol)
	}
	if o.ConnectionString == "" && o.ServiceURL == "" && o.Account == "" {
		return errors.New("azblob: no account: give storage_account, service_url or a connection string (or set AZURE_STORAGE_ACCOUNT)")
	}
	if o.AccountKey != "" && o.Account == "" {
		return errors.New("azblob: account_key needs the account name (storage_account or AZURE_STORAGE_ACCOUNT)")
	}
	return nil
}

// serviceURL returns the blob service endpoint without credentials.
func (o Options) serviceURL() string {
	if o.ServiceURL != "" {
		return strings.TrimSuffix(o.ServiceURL, "/")
	}
	domain := o.Domain
	if domain == "" {
		domain = "blob.core.windows.net"
	}
	protocol := o.Protocol
	if protocol == "" {
		protocol = "https"
	}
	if o.LocalEmulator || strings.HasPrefix(domain, "127.0.0.1") || strings.HasPrefix(domain, "localhost") {
		return protocol + "://" + domain + "/" + o.Account
	}
	return protocol + "://" + o.Account + "." + domain
}

// validContainer reports whether name is a valid container name: 3 to 63
// lowercase letters, digits and single hyphens, starting and ending with a
// letter or digit.
func validContainer(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NewContainerClient builds the SDK client that OpenBucket uses, for
// callers that need the SDK directly (benchmarks, administration). It
// creates the container when opts.Create is set.
func NewContainerClient(ctx context.Context, name string, opts Options) (*container.Client, error) {
	if !validContainer(name) {
		return nil, fmt.Errorf("azblob: invalid container name %q (3-63 lowercase letters, digits and single hyphens)", name)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var (
		c   *container.Client
		err error
	)
	containerURL := opts.serviceURL() + "/" + name
	switch {
	case opts.ConnectionString != "":
		c, err = container.NewClientFromConnectionString(opts.ConnectionString, name, nil)
		if err != nil {
			// The SDK's parse errors may quote the string: say only what failed.
			return nil, errors.New("azblob: malformed connection string")
		}
	case opts.AccountKey != "":
		cred, kerr := azsdk.NewSharedKeyCredential(opts.Account, opts.AccountKey)
		if kerr != nil {
			return nil, errors.New("azblob: account_key is not a valid base64 shared key")
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, nil)
	case opts.SASToken != "":
		c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(opts.SASToken, "?"), nil)
	default:
		cred := opts.Credential
		if cred == nil {
			dc, derr := azidentity.NewDefaultAzureCredential(nil)
			if derr != nil {
				return nil, fmt.Errorf("azblob: default Azure credential: %w", derr)
			}
			cred = dc
		}
		c, err = container.NewClient(containerURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("azblob: client for container %s: %w", name, err)
	}
	if opts.Create {
		if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil, fmt.Errorf("azblob: create container %s: %w", name, err)
		}
	}
	return c, nil
}

// OpenBucket opens a container. Wrap the result with objects.NewBucket.
func OpenBucket(ctx context.Context, containerName string, opts Options) (*blob.Bucket, error) {
	c, err := NewContainerClient(ctx, containerName, opts)
	if err != nil {
		return nil, err
	}
	b, err := azureblob.OpenBucket(ctx, c, nil)
	if err != nil {
		return nil, fmt.Errorf("azblob: open container %s: %w", containerName, err)
	}
	return b, nil
}

var knownParams = []string{
	"service_url", "storage_account", "domain", "protocol", "localemu",
	"connection_string", "account_key", "sas_token", "create",
}

// ParseURL turns an azblob:// URL into a container name and Options,
// without the environment. Its errors name the offending parameter, never
// a secret value.
func ParseURL(u *url.URL) (containerName string, opts Options, err error) {
	bu, err := objects.SplitURL(u, Scheme, "container")
	if err != nil {
		return "", opts, err
	}
	containerName = bu.Name
	for k, v := range bu.Params {
		switch k {
		case "service_url":
			opts.ServiceURL = v
		case "storage_account":
			opts.Account = v
		case "domain":
			opts.Domain = v
		case "protocol":
			opts.Protocol = v
		case "localemu", "create":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return "", opts, fmt.Errorf("azblob: %s must be true or false, not %q", k, v)
			}
			if k == "create" {
				opts.Create = b
			} else {
				opts.LocalEmulator = b
			}
		case "connection_string":
			opts.ConnectionString = v
		case "account_key":
			opts.AccountKey = v
		case "sas_token":
			opts.SASToken = v
		default:
			return "", opts, fmt.Errorf("azblob: unknown URL parameter %q (known: %s)", k, strings.Join(knownParams, ", "))
		}
	}
	return containerName, opts, nil
}

// withEnv fills what the URL left unset from the environment, as the
// package documentation describes.
func withEnv(o Options, getenv func(string) string) Options {
	urlEndpoint := o.hasEndpoint()
	urlCred := o.ConnectionString != "" || o.AccountKey != "" || o.SASToken != ""
	envAccount := getenv("AZURE_STORAGE_ACCOUNT")
	if o.ConnectionString == "" {
		if o.Account == "" {
			o.Account = envAccount
		}
		if o.Domain == "" {
			o.Domain = getenv("AZURE_STORAGE_DOMAIN")
		}
		if o.Protocol == "" {
			o.Protocol = getenv("AZURE_STORAGE_PROTOCOL")
		}
		if !o.LocalEmulator {
			o.LocalEmulator, _ = strconv.ParseBool(getenv("AZURE_STORAGE_IS_LOCAL_EMULATOR"))
		}
	}
	if urlCred {
		return o
	}
	if key := getenv("AZURE_STORAGE_KEY"); key != "" && o.Account != "" && (envAccount == "" || envAccount == o.Account) {
		o.AccountKey = key
		return o
	}
	if sas := getenv("AZURE_STORAGE_SAS_TOKEN"); sas != "" {
		o.SASToken = sas
		return o
	}
	cs := getenv("AZURE_STORAGE_CONNECTION_STRING")
	if cs == "" {
		cs = getenv("AZURE_STORAGEBLOB_CONNECTIONSTRING")
	}
	if cs != "" && !urlEndpoint {
		o = Options{ConnectionString: cs, Create: o.Create}
	}
	return o
}

func open(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	name, opts, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenBucket(ctx, name, withEnv(opts, os.Getenv))
}
