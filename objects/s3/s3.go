// Package s3 is the objects driver for Amazon S3 and S3-compatible stores
// (versitygw, Ceph, ...), over gocloud.dev/blob/s3blob and aws-sdk-go-v2.
//
// It registers the scheme "s3":
//
//	s3://BUCKET?region=us-east-1&endpoint=http://127.0.0.1:7070&use_path_style=true&profile=NAME
//
// Query parameters (any other is an error):
//
//	region                        signing region; else AWS_REGION / the profile; us-east-1 when endpoint is set and nothing else names one
//	endpoint                      custom endpoint URL (http or https), for S3-compatible stores
//	use_path_style                true: https://host/bucket/key instead of https://bucket.host/key (also s3ForcePathStyle)
//	profile                       shared config/credentials profile (~/.aws/config, ~/.aws/credentials)
//	access_key_id                 static credentials, with secret_access_key (and optionally session_token);
//	secret_access_key             prefer the default chain: a URL with a secret must be kept like a password
//	session_token
//	request_checksum_calculation  when_supported (SDK default) or when_required (for stores that reject the new checksums)
//	response_checksum_validation  when_supported (SDK default) or when_required
//
// Credentials come from the static keys when given, else from the
// standard chain of aws-sdk-go-v2's config.LoadDefaultConfig: environment
// (AWS_ACCESS_KEY_ID, ...), shared config and credentials files (with the
// profile), web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, as on
// EKS), SSO, and the ECS/EC2 instance roles. No error or log of this
// package contains a secret.
//
// Conditional create (objects.PutOptions.IfNotExist) sends
// "If-None-Match: *" on PutObject and on CompleteMultipartUpload, as S3
// has supported since 2024; a store that ignores the header would
// overwrite, so the conformance suite checks it against the real server.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/intercloud/intercloud/objects"
)

// Scheme is the URL scheme this driver registers.
const Scheme = "s3"

func init() {
	objects.Register(Scheme, open)
	objects.RegisterListStart(listStart)
}

// listStart starts a listing's first page after the key after with S3's
// StartAfter (later pages follow their continuation token). gocloud.dev
// escapes control characters and "../" in keys on the wire, which could
// move a key before after there; a start key holding one is left to the
// caller's own filter.
func listStart(as func(any) bool, after string) bool {
	var in *awss3.ListObjectsV2Input
	if !as(&in) || in.ContinuationToken != nil {
		return false
	}
	if !utf8.ValidString(after) || strings.Contains(after, "../") || strings.IndexFunc(after, func(r rune) bool { return r < 32 }) >= 0 {
		return false
	}
	in.StartAfter = aws.String(after)
	return true
}

// Options configure a bucket. The zero value uses the default credential
// chain and the region from the environment or shared config.
type Options struct {
	// Region is the signing region (AWS_REGION or the profile's when empty).
	Region string
	// Endpoint is a custom endpoint URL for S3-compatible stores.
	Endpoint string
	// UsePathStyle addresses buckets as a path (needed by most
	// S3-compatible stores and by bucket names with dots).
	UsePathStyle bool
	// Profile selects a shared config profile.
	Profile string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials;
	// when AccessKeyID is empty the default chain is used.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// RequestChecksumCalculation and ResponseChecksumValidation are
	// "when_supported" (default) or "when_required".
	RequestChecksumCalculation string
	ResponseChecksumValidation string
	// Logger receives the SDK's own log lines (default slog.Default()).
	Logger *slog.Logger
}

// Validate checks the options without reaching the network. Its errors
// name the field and never include a secret.
func (o Options) Validate() error {
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("s3: endpoint must be an http or https URL with a host")
		}
		if u.User != nil {
			return errors.New("s3: endpoint must not hold credentials")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return errors.New("s3: endpoint must not have a query or fragment")
		}
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		return errors.New("s3: access_key_id and secret_access_key must be given together")
	}
	if o.SessionToken != "" && o.AccessKeyID == "" {
		return errors.New("s3: session_token needs access_key_id and secret_access_key")
	}
	for name, v := range map[string]string{
		"request_checksum_calculation": o.RequestChecksumCalculation,
		"response_checksum_validation": o.ResponseChecksumValidation,
	} {
		if v != "" && v != "when_supported" && v != "when_required" {
			return fmt.Errorf("s3: %s must be when_supported or when_required, not %q", name, v)
		}
	}
	return nil
}

// OpenBucket opens an S3 bucket. The bucket must exist; it is not created.
// Wrap the result with objects.NewBucket.
func OpenBucket(ctx context.Context, bucket string, opts Options) (*blob.Bucket, error) {
	if bucket == "" {
		return nil, errors.New("s3: a bucket name is required (s3://BUCKET)")
	}
	client, err := NewClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	var so s3blob.Options
	if opts.RequestChecksumCalculation == "when_required" {
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}
	b, err := s3blob.OpenBucket(ctx, client, bucket, &so)
	if err != nil {
		return nil, fmt.Errorf("s3: open bucket %s: %w", bucket, err)
	}
	return b, nil
}

// NewClient builds the S3 client that OpenBucket uses, for callers that
// need the SDK directly (benchmarks, bucket administration).
func NewClient(ctx context.Context, opts Options) (*awss3.Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.AccessKeyID != "" {
		lo = append(lo, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)))
	}
	if opts.RequestChecksumCalculation == "when_required" {
		lo = append(lo, config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired))
	}
	if opts.ResponseChecksumValidation == "when_required" {
		lo = append(lo, config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	lo = append(lo, config.WithLogger(SDKLogger(log.With("component", "s3"))))
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		// The SDK's configuration errors name files and profiles, not
		// secrets; still, say only what failed.
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, errors.New("s3: no region: set region= in the URL, AWS_REGION, or the profile's region")
		}
		cfg.Region = "us-east-1"
	}
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.UsePathStyle
	}), nil
}

// ParseURL turns an s3:// URL into a bucket name and Options. Its errors
// name the offending parameter, never a secret value.
func ParseURL(u *url.URL) (bucket string, opts Options, err error) {
	bu, err := objects.SplitURL(u, Scheme, "bucket")
	if err != nil {
		return "", opts, err
	}
	bucket = bu.Name
	for k, v := range bu.Params {
		switch k {
		case "region":
			opts.Region = v
		case "endpoint":
			opts.Endpoint = v
		case "use_path_style", "s3ForcePathStyle":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return "", opts, fmt.Errorf("s3: %s must be true or false, not %q", k, v)
			}
			opts.UsePathStyle = b
		case "profile":
			opts.Profile = v
		case "access_key_id":
			opts.AccessKeyID = v
		case "secret_access_key":
			opts.SecretAccessKey = v
		case "session_token":
			opts.SessionToken = v
		case "request_checksum_calculation":
			opts.RequestChecksumCalculation = v
		case "response_checksum_validation":
			opts.ResponseChecksumValidation = v
		default:
			return "", opts, fmt.Errorf("s3: unknown URL parameter %q (known: %s)", k, strings.Join(knownParams, ", "))
		}
	}
	return bucket, opts, opts.Validate()
}

var knownParams = []string{
	"region", "endpoint", "use_path_style", "profile",
	"access_key_id", "secret_access_key", "session_token",
	"request_checksum_calculation", "response_checksum_validation",
}

func open(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	bucket, opts, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenBucket(ctx, bucket, opts)
}

// SDKLogger returns a logger for an AWS SDK client configuration
// (config.WithLogger) that sends the SDK's lines to log instead of stderr,
// where the SDK's default logger writes them.
func SDKLogger(log *slog.Logger) logging.Logger {
	return sdkLogger{log.With("library", "aws-sdk-go-v2")}
}

// sdkLogger sends the SDK's log lines to slog instead of stderr.
type sdkLogger struct{ log *slog.Logger }

// Logf implements logging.Logger.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	msg := fmt.Sprintf(format, v...)
	// Multipart objects carry composite checksums the SDK cannot validate
	// on download; that is expected, not a warning.
	if c == logging.Warn && !strings.Contains(msg, "Skipped validation of multipart checksum") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, msg)
}
