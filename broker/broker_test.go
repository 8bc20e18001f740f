package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedSharedByCLI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	srv, err := Open(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Embedded() || srv.ClientURL() == "" {
		t.Fatalf("embedded=%v url=%q", srv.Embedded(), srv.ClientURL())
	}
	if _, err := srv.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "probe"}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, infoFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("info file: %v %v", err, info)
	}

	// A second process (a CLI command) on the same directory connects to
	// the running server instead of opening the store twice.
	cli, err := Open(ctx, Config{DataDir: dir, Listen: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if cli.Embedded() {
		t.Fatal("second Open started its own server on a locked store")
	}
	if _, err := cli.JS.KeyValue(ctx, "probe"); err != nil {
		t.Fatalf("CLI does not see the server's bucket: %v", err)
	}
	cli.Close()
	srv.Close()
	if _, err := os.Stat(filepath.Join(dir, infoFile)); !os.IsNotExist(err) {
		t.Fatalf("info file left behind: %v", err)
	}

	// With the server gone, a command runs its own in-process server on
	// the same store and finds the data.
	again, err := Open(ctx, Config{DataDir: dir, Listen: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Embedded() {
		t.Fatal("expected an in-process server once the lock is free")
	}
	if _, err := again.JS.KeyValue(ctx, "probe"); err != nil {
		t.Fatalf("data lost across restart: %v", err)
	}
}

func TestRunningServerRequiresToken(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Open(ctx, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := Open(ctx, Config{URL: srv.ClientURL(), ConnectTimeout: 2 * time.Second}); err == nil {
		t.Fatal("connected to the embedded server without its token")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{Listen: "0.0.0.0:4222"},
		{Listen: "nohostport"},
		{Listen: "127.0.0.1:abc"},
		{TLSCert: "cert.pem"},
		{SyncInterval: -time.Second},
	} {
		if err := c.WithDefaults().validate(); err == nil {
			t.Errorf("%+v: validate accepted it", c)
		}
	}
	if err := (Config{}).WithDefaults().validate(); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
}
