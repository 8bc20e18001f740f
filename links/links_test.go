package links

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	key1 = "0123456789abcdef0123456789abcdef"
	key2 = "another key, another key, another key"
)

type clock struct{ t atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) Add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.t.Store(t.UnixNano()); return c }
func mustNew(t *testing.T, cfg Config) *Sealer {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://status.example.com/"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	c := newClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s := mustNew(t, Config{Key: key1, Now: c.Now})
	tok := s.Seal(Confirm, "m_1042", "e1", "Ops@Dupont.example", time.Hour)
	// Ids long enough not to appear in random base64 by chance.
	long := s.Seal(Confirm, "merchant_boulangerie_dupont", "endpoint_email_ops", "Ops@Dupont.example", time.Hour)
	if strings.Contains(long, "boulangerie") || strings.Contains(long, "endpoint_email") || strings.Contains(strings.ToLower(long), "dupont.example") {
		t.Fatal("token reveals its content")
	}
	got, err := s.Open(tok, Confirm)
	if err != nil || got.SubscriberID != "m_1042" || got.EndpointID != "e1" {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	if !got.For("ops@dupont.example ") || got.For("other@dupont.example") {
		t.Fatal("address binding wrong")
	}
	if !got.Expires.Equal(c.Now().Add(time.Hour)) {
		t.Fatalf("expires %v", got.Expires)
	}
	if _, err := s.Open(tok, Unsubscribe); !errors.Is(err, ErrInvalid) {
		t.Fatalf("opened for another purpose: %v", err)
	}
	c.Add(time.Hour)
	if _, err := s.Open(tok, Confirm); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestTamperedTokensRefused(t *testing.T) {
	t.Parallel()
	s := mustNew(t, Config{Key: key1})
	tok := s.Seal(Unsubscribe, "m_1", "mail", "a@b.example", time.Hour)
	for i := range tok {
		bad := []byte(tok)
		bad[i] = map[bool]byte{true: 'B', false: 'A'}[bad[i] == 'A']
		if _, err := s.Open(string(bad), Unsubscribe); !errors.Is(err, ErrInvalid) {
			t.Fatalf("altered token (byte %d) accepted: %v", i, err)
		}
	}
	for _, bad := range []string{"", "!!!", tok + "A", tok[:10], strings.Repeat("A", 600)} {
		if _, err := s.Open(bad, Unsubscribe); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%q) = %v", bad, err)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	old := mustNew(t, Config{Key: key1})
	tok := old.Seal(Manage, "m_1", "mail", "a@b.example", time.Hour)
	rotated := mustNew(t, Config{Key: key2, PreviousKey: key1})
	if _, err := rotated.Open(tok, Manage); err != nil {
		t.Fatalf("a token of the previous key: %v", err)
	}
	fresh := rotated.Seal(Manage, "m_1", "mail", "a@b.example", time.Hour)
	if _, err := old.Open(fresh, Manage); !errors.Is(err, ErrInvalid) {
		t.Fatal("new tokens must be sealed with the new key")
	}
	dropped := mustNew(t, Config{Key: key2})
	if _, err := dropped.Open(tok, Manage); !errors.Is(err, ErrInvalid) {
		t.Fatal("a token of a dropped key opened")
	}
}

func TestURLs(t *testing.T) {
	t.Parallel()
	s := mustNew(t, Config{Key: key1})
	for _, tc := range []struct {
		url  string
		want string
		p    Purpose
	}{
		{s.UnsubscribeURL("m", "e", "a@b.example"), "https://status.example.com/unsubscribe/", Unsubscribe},
		{s.PreferencesURL("m", "e", "a@b.example"), "https://status.example.com/manage/", Manage},
	} {
		tok, ok := strings.CutPrefix(tc.url, tc.want)
		if !ok {
			t.Fatalf("%s does not start with %s", tc.url, tc.want)
		}
		if _, err := s.Open(tok, tc.p); err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Key: "short", BaseURL: "https://x.example"},
		{Key: key1, PreviousKey: "short", BaseURL: "https://x.example"},
		{Key: key1, BaseURL: "ftp://x.example"},
		{Key: key1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func FuzzOpen(f *testing.F) {
	s, _ := New(Config{Key: key1, BaseURL: "https://x.example"})
	f.Add(s.Seal(Unsubscribe, "m", "e", "a@b.example", time.Hour))
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Open(tok, Unsubscribe)
		if err == nil && (c.SubscriberID == "" || c.EndpointID == "") {
			t.Fatalf("opened to empty ids: %+v", c)
		}
	})
}
