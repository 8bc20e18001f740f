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
// error), drains the rest up to limit bytes in all, and closes rc. truncated
// reports that the body went on past head.
func ReadHead(rc io.ReadCloser, head, limit int64) (b []byte, truncated bool) {
	b = make([]byte, max(min(head, limit), 0))
	n, truncated := ReadHeadInto(rc, b, limit)
	return b[:n], truncated
}

// ReadHeadInto is [ReadHead] into buf, which the caller owns (a pooled
// buffer): it reads at most len(buf) bytes of rc into buf, drains the rest
// up to limit bytes in all, closes rc, and returns how many bytes it read.
func ReadHeadInto(rc io.ReadCloser, buf []byte, limit int64) (n int, truncated bool) {
	if int64(len(buf)) > limit {
		buf = buf[:max(limit, 0)]
	}
	n, _ = io.ReadFull(rc, buf)
	_ = DrainClose(rc, limit-int64(n))
	return n, len(buf) > 0 && n == len(buf)
}
