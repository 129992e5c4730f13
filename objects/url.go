package objects

import (
	"fmt"
	"net/url"
)

// BucketURL is a driver URL split the way every driver reads it:
// SCHEME://NAME?key=value&..., each key at most once.
type BucketURL struct {
	// Name is the bucket or container name (the URL's host).
	Name string
	// Params holds the query parameters, one value each.
	Params map[string]string
}

// SplitURL checks the parts every driver URL shares and returns the name
// and parameters. what names the bucket in messages ("bucket",
// "container"). Errors never hold a parameter's value (it may be secret).
func SplitURL(u *url.URL, scheme, what string) (BucketURL, error) {
	var b BucketURL
	switch {
	case u.Scheme != scheme:
		return b, fmt.Errorf("%s: URL scheme must be %q", scheme, scheme)
	case u.User != nil:
		return b, fmt.Errorf("%s: credentials in the URL's user part are not supported", scheme)
	case u.Path != "" && u.Path != "/":
		return b, fmt.Errorf("%s: the URL names a %s only (%s://NAME?...), not a path", scheme, what, scheme)
	case u.Host == "":
		return b, fmt.Errorf("%s: a %s name is required (%s://NAME)", scheme, what, scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return b, fmt.Errorf("%s: malformed query string", scheme)
	}
	b.Name, b.Params = u.Host, make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) != 1 {
			return b, fmt.Errorf("%s: parameter %s given %d times", scheme, k, len(vs))
		}
		b.Params[k] = vs[0]
	}
	return b, nil
}
