package peers

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Chromium returns the path of Debian's chromium for a headless browser
// test, installing the package with apt-get when it is missing (root
// only). Without it the test is skipped, or fails when peers are required.
func Chromium(t testing.TB) string {
	t.Helper()
	if p, err := lookTool("chromium", "/usr/bin", "/usr/lib/chromium"); err == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	// The lock of every apt-get install here (see peerByName): dpkg
	// installs one thing at a time.
	unlock, err := lockFile(ctx, filepath.Join(CacheDir(), "locks", "apt.lock"))
	if err != nil {
		unavailable(t, "peers: chromium: %v", err)
	}
	defer unlock()
	if p, err := lookTool("chromium", "/usr/bin"); err == nil {
		return p
	}
	progress("installing chromium (apt-get) ...")
	if err := aptInstall(ctx, "chromium"); err != nil {
		unavailable(t, "peers: chromium: %v", err)
	}
	p, err := lookTool("chromium", "/usr/bin")
	if err != nil {
		unavailable(t, "peers: chromium: installed but not found: %v", err)
	}
	return p
}
