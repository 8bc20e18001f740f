package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// ErrInvalidSecret is wrapped by the error Send returns when the endpoint's
// signing secret is missing or malformed. The error never quotes the
// secret.
var ErrInvalidSecret = errors.New("invalid webhook signing secret")

const (
	secretPrefix = "whsec_"
	// MinKeyBytes and MaxKeyBytes bound the decoded signing key, as the
	// Standard Webhooks specification recommends (24 to 64 random bytes).
	MinKeyBytes = 24
	MaxKeyBytes = 64
	// maxSecrets bounds how many space-separated secrets one endpoint
	// may carry (rotation needs two).
	maxSecrets = 4
	// maxCachedSigners bounds the signer cache; it is emptied when full.
	maxCachedSigners = 4096
)

// signer signs with one endpoint's keys. Its HMAC states are pooled, so a
// steady stream of sends to one endpoint allocates none.
type signer struct {
	pools []sync.Pool // one per key, of *macState
}

type macState struct {
	h   hash.Hash
	buf []byte // "id.timestamp." and then the sum
}

// CheckSecret checks an endpoint secret as the channel reads it before
// signing: one to four space-separated "whsec_" + base64 keys of
// [MinKeyBytes] to [MaxKeyBytes] bytes. Errors wrap [ErrInvalidSecret] and
// never quote the secret.
func CheckSecret(s string) error {
	_, err := parseSecret(s)
	return err
}

// parseSecret decodes an endpoint secret: one or more space-separated
// "whsec_" + base64 keys (several during a rotation: the receiver accepts
// any of the signatures).
func parseSecret(s string) (*signer, error) {
	fields := strings.Fields(s)
	switch {
	case len(fields) == 0:
		return nil, fmt.Errorf("%w: missing", ErrInvalidSecret)
	case len(fields) > maxSecrets:
		return nil, fmt.Errorf("%w: more than %d secrets", ErrInvalidSecret, maxSecrets)
	}
	sg := &signer{pools: make([]sync.Pool, len(fields))}
	for i, f := range fields {
		if !strings.HasPrefix(f, secretPrefix) {
			return nil, fmt.Errorf("%w: secret %d lacks the %q prefix", ErrInvalidSecret, i+1, secretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(f[len(secretPrefix):])
		if err != nil {
			return nil, fmt.Errorf("%w: secret %d is not base64", ErrInvalidSecret, i+1)
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			return nil, fmt.Errorf("%w: secret %d has a %d-byte key, want %d to %d", ErrInvalidSecret, i+1, len(key), MinKeyBytes, MaxKeyBytes)
		}
		sg.pools[i].New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	}
	return sg, nil
}

// sign returns the webhook-signature header value: "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" per key, space-separated.
func (sg *signer) sign(id string, ts int64, body []byte) string {
	const sigLen = len("v1,") + 44 // base64 of 32 bytes
	var out strings.Builder
	out.Grow(len(sg.pools) * (sigLen + 1))
	for i := range sg.pools {
		st := sg.pools[i].Get().(*macState)
		st.h.Reset()
		st.buf = append(st.buf[:0], id...)
		st.buf = append(st.buf, '.')
		st.buf = strconv.AppendInt(st.buf, ts, 10)
		st.buf = append(st.buf, '.')
		st.h.Write(st.buf)
		st.h.Write(body)
		st.buf = st.h.Sum(st.buf[:0])
		if i > 0 {
			out.WriteByte(' ')
		}
		out.WriteString("v1,")
		n := len(st.buf)
		st.buf = base64.StdEncoding.AppendEncode(st.buf, st.buf)
		out.Write(st.buf[n:])
		sg.pools[i].Put(st)
	}
	return out.String()
}

// signers caches parsed secrets, keyed by the secret string, so a send
// does not decode the key and build HMAC states again.
type signers struct {
	mu sync.RWMutex
	m  map[string]*signer
}

func (c *signers) get(s string) (*signer, error) {
	c.mu.RLock()
	sg := c.m[s]
	c.mu.RUnlock()
	if sg != nil {
		return sg, nil
	}
	sg, err := parseSecret(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedSigners {
		clear(c.m)
	}
	if c.m == nil {
		c.m = make(map[string]*signer)
	}
	c.m[s] = sg
	c.mu.Unlock()
	return sg, nil
}
