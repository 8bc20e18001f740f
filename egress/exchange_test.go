package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNewPost(t *testing.T) {
	u, _ := url.Parse("https://hooks.example/T0/B0/s3cr3t?x=1")
	body := []byte(`{"a":1}`)
	req := NewPost(context.Background(), u, http.Header{"Content-Type": {"application/json"}}, body)
	if req.Method != http.MethodPost || req.Host != "hooks.example" || req.ContentLength != int64(len(body)) || req.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request %+v", req)
	}
	for range 2 { // the body, then a copy for a second send
		got, _ := io.ReadAll(req.Body)
		if string(got) != string(body) {
			t.Fatalf("body %q", got)
		}
		if req.Body, _ = req.GetBody(); req.Body == nil {
			t.Fatal("GetBody returned no body")
		}
	}
}

func TestCauseAndRefused(t *testing.T) {
	blocked := &BlockedError{}
	for _, tc := range []struct {
		name    string
		err     error
		quoted  bool // the URL is still in the error
		refused bool
	}{
		{"url error", &url.Error{Op: "Post", URL: "https://h.example/s3cr3t", Err: errors.New("connection refused")}, false, false},
		{"blocked behind url error", &url.Error{Op: "Post", URL: "https://h.example/s3cr3t", Err: blocked}, false, true},
		{"invalid url wrapped", fmt.Errorf("check: %w", ErrInvalidURL), false, true},
		{"plain", errors.New("EOF"), false, false},
	} {
		err := Cause(tc.err)
		if got := strings.Contains(err.Error(), "s3cr3t"); got != tc.quoted {
			t.Errorf("%s: Cause(err) = %q", tc.name, err)
		}
		if got := Refused(err); got != tc.refused {
			t.Errorf("%s: Refused = %v, want %v", tc.name, got, tc.refused)
		}
	}
}

// countingBody counts what is read of it and whether it was closed.
type countingBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestReadHead(t *testing.T) {
	for _, tc := range []struct {
		name            string
		body            int
		head, max       int64
		wantHead, wantN int
		truncated       bool
	}{
		{"short", 10, 100, 1000, 10, 10, false},
		{"long, drained", 500, 100, 1000, 100, 500, true},
		{"endless, cut at max", 1 << 20, 100, 1000, 100, 1000, true},
		{"max below head", 500, 100, 50, 50, 50, true},
		{"nothing to read", 0, 100, 1000, 0, 0, false},
	} {
		b := &countingBody{r: strings.NewReader(strings.Repeat("x", tc.body))}
		head, truncated := ReadHead(b, tc.head, tc.max)
		if len(head) != tc.wantHead || truncated != tc.truncated || b.read != tc.wantN || !b.closed {
			t.Errorf("%s: head %d bytes, truncated %v, read %d, closed %v; want %d, %v, %d, true",
				tc.name, len(head), truncated, b.read, b.closed, tc.wantHead, tc.truncated, tc.wantN)
		}
	}
}
