package dispatcher

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/secret"
)

// links seals and opens the tokens of unsubscribe links. A token is the
// subscriber and endpoint ids encrypted and authenticated with AES-GCM under
// a key derived from the server's secret: it cannot be forged or altered,
// and it carries no readable data.
type links struct {
	aead    cipher.AEAD
	baseURL string
}

const tokenVersion = 1

func newLinks(key secret.Value, publicURL string) (*links, error) {
	k, err := hkdf.Key(sha256.New, []byte(key.Reveal()), nil, "herald unsubscribe token v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &links{aead: aead, baseURL: strings.TrimRight(publicURL, "/")}, nil
}

// seal returns the token of (subscriberID, endpointID).
func (l *links) seal(subscriberID, endpointID string) string {
	plain := make([]byte, 0, 2+len(subscriberID)+len(endpointID))
	plain = append(plain, tokenVersion)
	plain = append(plain, subscriberID...)
	plain = append(plain, 0)
	plain = append(plain, endpointID...)
	nonce := make([]byte, l.aead.NonceSize(), l.aead.NonceSize()+len(plain)+l.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(l.aead.Seal(nonce, nonce, plain, nil))
}

var errBadToken = errors.New("invalid or altered link")

// open returns the ids sealed in token.
func (l *links) open(token string) (subscriberID, endpointID string, err error) {
	// Strict: a token whose unused trailing bits were changed decodes to
	// the same bytes otherwise, and an altered link must not open.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) < l.aead.NonceSize()+l.aead.Overhead()+2 {
		return "", "", errBadToken
	}
	ns := l.aead.NonceSize()
	plain, err := l.aead.Open(nil, raw[:ns], raw[ns:], nil)
	if err != nil || len(plain) < 2 || plain[0] != tokenVersion {
		return "", "", errBadToken
	}
	sub, ep, ok := strings.Cut(string(plain[1:]), "\x00")
	if !ok || sub == "" || ep == "" {
		return "", "", errBadToken
	}
	return sub, ep, nil
}

// unsubscribeURL is the one-click unsubscribe link of an endpoint.
func (l *links) unsubscribeURL(subscriberID, endpointID string) string {
	return l.baseURL + "/unsubscribe/" + l.seal(subscriberID, endpointID)
}
