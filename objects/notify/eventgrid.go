package notify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/intercloud/intercloud/objects"
)

// BlobCreated is the Event Grid event type of a created blob.
const BlobCreated = "Microsoft.Storage.BlobCreated"

// gridEvent reads an Event Grid event in the Event Grid schema
// (eventType) or the CloudEvents 1.0 schema (type).
type gridEvent struct {
	EventType string `json:"eventType"`
	Type      string `json:"type"`
	Subject   string `json:"subject"`
	Data      struct {
		URL           string          `json:"url"`
		ContentLength json.RawMessage `json:"contentLength"`
	} `json:"data"`
}

// DecodeQueueMessage returns the JSON of a Storage Queue message: Event
// Grid writes it base64-encoded; text that is not base64 is taken as is.
func DecodeQueueMessage(text string) []byte {
	t := strings.TrimSpace(text)
	if t == "" || t[0] == '{' || t[0] == '[' {
		return []byte(t)
	}
	if b, err := base64.StdEncoding.DecodeString(t); err == nil {
		return b
	}
	return []byte(t)
}

// ParseEventGrid reads one Event Grid event, or a JSON array of them, and
// returns an event for every BlobCreated of a blob in container, keyed by
// the blob's name in it. Other event types and other containers' blobs are
// skipped without error.
func ParseEventGrid(body []byte, container string) ([]objects.Event, error) {
	body = bytes.TrimSpace(body)
	var evs []gridEvent
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	} else {
		var e gridEvent
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: data after the JSON event", ErrMalformed)
		}
		evs = []gridEvent{e}
	}
	var out []objects.Event
	for i, e := range evs {
		typ := e.EventType
		if typ == "" {
			typ = e.Type
		}
		if typ == "" {
			return nil, fmt.Errorf("%w: event %d has no eventType", ErrMalformed, i)
		}
		if typ != BlobCreated {
			continue
		}
		key, ok, err := BlobKey(e.Data.URL, container)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
		if !ok {
			continue
		}
		size, err := parseSize(e.Data.ContentLength)
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
		}
		out = append(out, objects.Event{Key: key, Size: size, Source: Source})
	}
	return out, nil
}

// BlobKey returns the name of the blob a blob URL names inside container,
// for account-host URLs (https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY)
// and emulator URLs (http://127.0.0.1:10000/ACCOUNT/CONTAINER/KEY). ok is
// false when the blob is in another container.
func BlobKey(blobURL, container string) (key string, ok bool, err error) {
	if blobURL == "" {
		return "", false, fmt.Errorf("no blob url")
	}
	u, err := url.Parse(blobURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", false, fmt.Errorf("bad blob url")
	}
	segs := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 3)
	switch {
	case len(segs) >= 2 && segs[0] == container:
		key = strings.Join(segs[1:], "/")
	case len(segs) == 3 && segs[1] == container:
		key = segs[2]
	default:
		return "", false, nil
	}
	if err := objects.ValidateKey(key); err != nil {
		return "", false, err
	}
	return key, true, nil
}
