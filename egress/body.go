package egress

import (
	"io"
)

// ReadLimited reads r until EOF or n bytes, whichever comes first, and
// returns what it read. It never reads more than n bytes, so a hostile
// receiver cannot make Herald buffer an unbounded answer.
func ReadLimited(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(r, n))
}

// DrainClose reads and discards at most n more bytes of rc, then closes it.
// Draining a short response lets net/http reuse the keep-alive connection;
// the bound stops a receiver from streaming forever (a longer body is cut,
// and its connection closed instead of reused).
func DrainClose(rc io.ReadCloser, n int64) error {
	if n > 0 {
		_, _ = io.CopyN(io.Discard, rc, n)
	}
	return rc.Close()
}
