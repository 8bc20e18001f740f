package egress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
)

// NewPost returns a POST of body to u with header, ready for a guarded
// transport's RoundTrip or an http.Client. Its body is one net/http knows
// to be in memory (an io.NopCloser of a *bytes.Reader): headers and body go
// out in one write, and the request can be sent again.
func NewPost(ctx context.Context, u *url.URL, header http.Header, body []byte) *http.Request {
	return (&http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
		ContentLength: int64(len(body)),
		Host:          u.Host,
	}).WithContext(ctx)
}

// Cause returns the cause of a failed exchange without the *url.Error
// net/http wraps it in: that error quotes the whole URL, whose path and
// query may hold a secret (an incoming-webhook token, a signed link).
func Cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Refused reports whether err is the guard refusing a URL or an address
// ([ErrInvalidURL], [*BlockedError]): sending again would fail the same
// way.
func Refused(err error) bool {
	var be *BlockedError
	return errors.As(err, &be) || errors.Is(err, ErrInvalidURL)
}

// ReadHead reads at most head bytes of an answer's body rc (to quote in an
// error), drains the rest up to max bytes in all, and closes rc. truncated
// reports that the body went on past head.
func ReadHead(rc io.ReadCloser, head, max int64) (b []byte, truncated bool) {
	head = min(head, max)
	b, _ = ReadLimited(rc, head)
	_ = DrainClose(rc, max-int64(len(b)))
	return b, head > 0 && int64(len(b)) == head
}
