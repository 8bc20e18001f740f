package links

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/secret"
)

// Purpose is what a link is for; a token opens only for its own purpose.
type Purpose byte

// The purposes of Herald's links.
const (
	// Unsubscribe disables one endpoint (one-click, RFC 8058).
	Unsubscribe Purpose = 1 + iota
	// Manage opens the preference centre of a subscriber.
	Manage
	// Confirm confirms an address (double opt-in).
	Confirm
	// Login opens the preference centre once: the magic link a merchant
	// asks for on the manage page.
	Login
	// Code names the phone number a confirmation code was sent to, in the
	// form where the code is typed; it is no link, and confirms nothing
	// without the code.
	Code
)

// String returns the purpose's name.
func (p Purpose) String() string {
	switch p {
	case Unsubscribe:
		return "unsubscribe"
	case Manage:
		return "manage"
	case Confirm:
		return "confirm"
	case Login:
		return "login"
	case Code:
		return "code"
	}
	return fmt.Sprintf("purpose(%d)", byte(p))
}

// path is the URL path under which links of the purpose are served.
func (p Purpose) path() string {
	if p == Login {
		return "/manage/"
	}
	return "/" + p.String() + "/"
}

// Errors of [Sealer.Open]. A token that does not open at all (forged,
// altered, sealed under an unknown key, or for another purpose) is
// [ErrInvalid]; a genuine one past its expiry is [ErrExpired].
var (
	ErrInvalid = errors.New("invalid or altered link")
	ErrExpired = errors.New("expired link")
)

// Claims is what a token carries.
type Claims struct {
	// Purpose is what the link is for.
	Purpose Purpose
	// SubscriberID and EndpointID name the endpoint the link is about
	// (EndpointID is the address's endpoint for Manage links).
	SubscriberID string
	EndpointID   string
	// Expires is when the link stops working (second precision).
	Expires time.Time
	// address is the digest of the address the link was sent to.
	address [addressDigest]byte
}

// For reports whether the claims were sealed for address (compared in
// canonical form: trimmed, lower-case).
func (c Claims) For(address string) bool {
	d := digest(address)
	return subtle.ConstantTimeCompare(d[:], c.address[:]) == 1
}

// Config configures a [Sealer].
type Config struct {
	// Key seals new tokens and opens them. Required, at least 32 bytes.
	Key secret.Value
	// PreviousKey, when set, opens tokens sealed before a key rotation.
	PreviousKey secret.Value
	// BaseURL is the public base URL the links start with
	// ("https://status.example.com"). Required.
	BaseURL string
	// UnsubscribeTTL is how long unsubscribe links work. Defaults to 90
	// days.
	UnsubscribeTTL time.Duration
	// PreferencesTTL is how long the preference links in notifications
	// work. Defaults to 30 days.
	PreferencesTTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.UnsubscribeTTL <= 0 {
		c.UnsubscribeTTL = 90 * 24 * time.Hour
	}
	if c.PreferencesTTL <= 0 {
		c.PreferencesTTL = 30 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}

func (c Config) validate() error {
	if len(c.Key.Reveal()) < 32 {
		return errors.New("links: the secret key must be at least 32 bytes")
	}
	if !c.PreviousKey.IsZero() && len(c.PreviousKey.Reveal()) < 32 {
		return errors.New("links: the previous secret key must be at least 32 bytes")
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("links: base URL %q must be an absolute http(s) URL", c.BaseURL)
	}
	return nil
}

// Sealer seals and opens tokens. It is safe for concurrent use.
type Sealer struct {
	cfg  Config
	keys []cipher.AEAD // current first
}

// New returns a sealer.
func New(cfg Config) (*Sealer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Sealer{cfg: cfg}
	for _, k := range []secret.Value{cfg.Key, cfg.PreviousKey} {
		if k.IsZero() {
			continue
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, aead)
	}
	return s, nil
}

func newAEAD(key secret.Value) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, []byte(key.Reveal()), nil, "herald link v2", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

const (
	version       = 2
	addressDigest = 12
	// header: version, purpose, expiry (uint32 Unix seconds), digest.
	headerLen = 2 + 4 + addressDigest
)

// digest is the address's fingerprint inside a token (the token is
// encrypted: it is not exposed).
func digest(address string) [addressDigest]byte {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(address))))
	var d [addressDigest]byte
	copy(d[:], sum[:])
	return d
}

// Seal returns a token for the purpose, the endpoint and the address it is
// sent to, valid for ttl.
func (s *Sealer) Seal(p Purpose, subscriberID, endpointID, address string, ttl time.Duration) string {
	exp := s.cfg.Now().Add(ttl).Unix()
	plain := make([]byte, headerLen, headerLen+len(subscriberID)+1+len(endpointID))
	plain[0], plain[1] = version, byte(p)
	binary.BigEndian.PutUint32(plain[2:6], uint32(max(exp, 0)))
	d := digest(address)
	copy(plain[6:], d[:])
	plain = append(plain, subscriberID...)
	plain = append(plain, 0)
	plain = append(plain, endpointID...)
	aead := s.keys[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, nil))
}

// Open returns the claims of a token sealed for purpose p, with the current
// or the previous key. It returns [ErrInvalid] for anything not sealed by
// Herald for p, and [ErrExpired] (with the claims) past the expiry.
func (s *Sealer) Open(token string, p Purpose) (Claims, error) {
	// Strict: a token whose unused trailing bits were changed would
	// decode to the same bytes otherwise, and an altered link must not
	// open.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(token) > 512 {
		return Claims{}, ErrInvalid
	}
	for _, aead := range s.keys {
		ns := aead.NonceSize()
		if len(raw) < ns+aead.Overhead()+headerLen+3 {
			return Claims{}, ErrInvalid
		}
		plain, err := aead.Open(nil, raw[:ns], raw[ns:], nil)
		if err != nil {
			continue
		}
		if plain[0] != version || Purpose(plain[1]) != p {
			return Claims{}, ErrInvalid
		}
		sub, ep, ok := strings.Cut(string(plain[headerLen:]), "\x00")
		if !ok || sub == "" || ep == "" {
			return Claims{}, ErrInvalid
		}
		c := Claims{Purpose: p, SubscriberID: sub, EndpointID: ep,
			Expires: time.Unix(int64(binary.BigEndian.Uint32(plain[2:6])), 0).UTC()}
		copy(c.address[:], plain[6:headerLen])
		if !s.cfg.Now().Before(c.Expires) {
			return c, ErrExpired
		}
		return c, nil
	}
	return Claims{}, ErrInvalid
}

// URL returns the public link of a token: BaseURL + "/<purpose>/" + token.
func (s *Sealer) URL(p Purpose, token string) string {
	return s.cfg.BaseURL + p.path() + token
}

// UnsubscribeURL returns the one-click unsubscribe link of an endpoint,
// sent to address, valid for the configured UnsubscribeTTL.
func (s *Sealer) UnsubscribeURL(subscriberID, endpointID, address string) string {
	return s.URL(Unsubscribe, s.Seal(Unsubscribe, subscriberID, endpointID, address, s.cfg.UnsubscribeTTL))
}

// PreferencesURL returns the link to a subscriber's preference centre for
// the notifications sent to address, valid for the configured
// PreferencesTTL.
func (s *Sealer) PreferencesURL(subscriberID, endpointID, address string) string {
	return s.URL(Manage, s.Seal(Manage, subscriberID, endpointID, address, s.cfg.PreferencesTTL))
}

// BaseURL returns the public base URL, without a trailing slash.
func (s *Sealer) BaseURL() string { return s.cfg.BaseURL }
