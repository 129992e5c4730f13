package topology

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/intercloud/intercloud/apierr"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/edge"
)

// KeyEnv is the environment variable that overrides the API key.
const KeyEnv = "INTERCLOUD_API_KEY"

// ResolveAPIKey returns the API key: $INTERCLOUD_API_KEY, else the topology
// file's api_key, else the key kept in the data directory, made on first
// use (created reports that).
func ResolveAPIKey(cfg *config.Config) (key string, created bool, err error) {
	if k := strings.TrimSpace(os.Getenv(KeyEnv)); k != "" {
		return k, false, nil
	}
	if cfg.APIKey != "" {
		return cfg.APIKey, false, nil
	}
	path := filepath.Join(cfg.DataDir, "api-key")
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, false, nil
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	k := "ick_" + hex.EncodeToString(buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, fmt.Errorf("topology: api key: %w", err)
		}
		return strings.TrimSpace(string(b)), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	_, werr := f.WriteString(k + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return "", false, fmt.Errorf("topology: api key: %w", err)
	}
	return k, true, nil
}

// purgeHTTP asks an edge in another process to purge paths.
func purgeHTTP(ctx context.Context, client *http.Client, edgeURL, key string, pr edge.PurgeRequest) error {
	body, _ := json.Marshal(pr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, edgeURL+"/purge", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	if e := apierr.Read(resp); e != nil {
		return fmt.Errorf("purge: %w", e)
	}
	return nil
}
