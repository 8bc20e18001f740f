package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPublicListenDefault: the public pages listen on 127.0.0.1:8081 unless
// HERALD_PUBLIC_LISTEN (or public_listen, or --public-listen) says
// otherwise.
func TestPublicListenDefault(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig("", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicListen != "127.0.0.1:8081" || cfg.Listen != "127.0.0.1:8080" {
		t.Fatalf("defaults: public %q, admin %q", cfg.PublicListen, cfg.Listen)
	}
	cfg, err = loadConfig("", func(k string) string {
		return map[string]string{"HERALD_PUBLIC_LISTEN": "0.0.0.0:9081"}[k]
	})
	if err != nil || cfg.PublicListen != "0.0.0.0:9081" {
		t.Fatalf("HERALD_PUBLIC_LISTEN: %q %v", cfg.PublicListen, err)
	}
}

// TestServePublicListener: herald serve answers the public pages on the
// public listener (set by HERALD_PUBLIC_LISTEN) and nothing of the admin
// API there, and no public page on the admin listener.
func TestServePublicListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, pubAddr := freeAddr(t), freeAddr(t)
	env := map[string]string{"HERALD_DATA": filepath.Join(dir, "data"), "HERALD_ADMIN_TOKEN": "admin-token-for-tests",
		"HERALD_PUBLIC_LISTEN": pubAddr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--nats-listen", "none"},
			&stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb, env: func(k string) string { return env[k] }})
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
	}()
	get := func(base, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+base+path, nil)
		req.Header.Set("Authorization", "Bearer admin-token-for-tests")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(addr, "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, page := get(pubAddr, "/subscribe"); code != http.StatusOK || !strings.Contains(page, `name="email"`) {
		t.Fatalf("the subscribe page on the public listener: %d\n%s", code, page)
	}
	for _, path := range []string{"/v1/subscribers", "/metrics", "/healthz", "/readyz"} {
		if code, page := get(pubAddr, path); code != http.StatusNotFound || strings.Contains(page, "herald_") {
			t.Errorf("%s on the public listener: %d, want 404", path, code)
		}
	}
	if code, _ := get(addr, "/v1/subscribers"); code != http.StatusOK {
		t.Errorf("the admin API on the admin listener: %d", code)
	}
	for _, path := range []string{"/subscribe", "/manage"} {
		if code, _ := get(addr, path); code != http.StatusNotFound {
			t.Errorf("%s on the admin listener: %d, want 404", path, code)
		}
	}
}
