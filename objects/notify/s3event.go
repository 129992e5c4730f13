package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/intercloud/intercloud/objects"
)

// ErrMalformed is wrapped by the errors of the notification parsers.
var ErrMalformed = errors.New("notify: malformed notification")

// s3Notification is the part of an S3 event notification we read. The
// bucket's arn is not read: some S3-compatible stores send it malformed.
type s3Notification struct {
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string          `json:"key"`
				Size json.RawMessage `json:"size"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	// Event is set on the s3:TestEvent S3 sends when a configuration is made.
	Event string `json:"Event"`
	// Type and Message are set when SNS wraps the notification.
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

// ParseS3Event reads an S3 event notification (as S3 sends it to SQS, SNS,
// Lambda or a webhook, optionally wrapped in an SNS envelope) and returns
// one event per created object, with the key URL-decoded. Test events and
// other event kinds yield no events and no error.
func ParseS3Event(body []byte) ([]objects.Event, error) {
	return parseS3(body, true, false)
}

// ParseS3EventRawKeys is ParseS3Event for stores that send object keys
// as they are, not URL-encoded (versitygw's webhook does).
func ParseS3EventRawKeys(body []byte) ([]objects.Event, error) {
	return parseS3(body, true, true)
}

func parseS3(body []byte, unwrap, rawKeys bool) ([]objects.Event, error) {
	var n s3Notification
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if n.Type != "" && len(n.Records) == 0 {
		if !unwrap {
			return nil, fmt.Errorf("%w: nested SNS envelope", ErrMalformed)
		}
		switch n.Type {
		case "Notification":
			return parseS3([]byte(n.Message), false, rawKeys)
		default: // SubscriptionConfirmation and the like carry no objects
			return nil, nil
		}
	}
	var out []objects.Event
	for i, r := range n.Records {
		name := strings.TrimPrefix(r.EventName, "s3:")
		if !strings.HasPrefix(name, "ObjectCreated:") {
			continue // s3:TestEvent, removals, restores, ...
		}
		key := r.S3.Object.Key
		if !rawKeys {
			var err error
			if key, err = DecodeS3Key(key); err != nil {
				return nil, fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
			}
		}
		if err := objects.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
		}
		size, err := parseSize(r.S3.Object.Size)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
		}
		out = append(out, objects.Event{Key: key, Size: size, Source: Source})
	}
	return out, nil
}

// parseSize reads a size given as a JSON number or string (stores differ).
func parseSize(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var n json.Number
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		n = json.Number(s)
	} else if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	v, err := n.Int64()
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad object size %q", string(raw))
	}
	return v, nil
}

// DecodeS3Key decodes an object key of an S3 notification: URL-encoded,
// with '+' for a space.
func DecodeS3Key(k string) (string, error) {
	d, err := url.QueryUnescape(k)
	if err != nil {
		return "", fmt.Errorf("object key: %w", err)
	}
	return d, nil
}
