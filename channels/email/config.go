package email

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/heraldhq/herald/secret"
)

// AuthMethod is an SMTP AUTH mechanism.
type AuthMethod string

// The authentication methods.
const (
	// AuthAuto picks the strongest mechanism the server offers among
	// SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS), CRAM-MD5, PLAIN and LOGIN.
	AuthAuto AuthMethod = "auto"
	// AuthPlain is PLAIN (RFC 4616).
	AuthPlain AuthMethod = "plain"
	// AuthLogin is LOGIN.
	AuthLogin AuthMethod = "login"
	// AuthCRAMMD5 is CRAM-MD5 (RFC 2195).
	AuthCRAMMD5 AuthMethod = "cram-md5"
)

// TLSMode is how the connection to the SMTP server is protected.
type TLSMode string

// The TLS modes.
const (
	// TLSStartTLS connects in clear text and upgrades with STARTTLS
	// (submission, port 587). The server must offer STARTTLS: Herald
	// never falls back to clear text.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (submissions, port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone never encrypts. Only allowed without credentials (a local
	// relay, tests).
	TLSNone TLSMode = "none"
)

// Config configures the email channel.
type Config struct {
	// Host is the SMTP submission server's host name or address.
	// Required.
	Host string
	// Port is the server's port. Defaults to 465 with TLSImplicit, 587
	// otherwise.
	Port int
	// Username and Password are the SMTP AUTH credentials. Both or
	// neither; without them Herald does not authenticate.
	Username string
	Password secret.Value
	// Auth is the AUTH mechanism. Defaults to AuthAuto when Username is
	// set.
	Auth AuthMethod
	// TLS is how the connection is protected. Defaults to TLSStartTLS.
	// TLSNone is refused when credentials are set.
	TLS TLSMode
	// TLSConfig is the TLS client configuration (extra root CAs…).
	// Defaults to the system roots and TLS 1.2 at least; its ServerName
	// defaults to Host.
	TLSConfig *tls.Config
	// HELO is the name Herald gives in EHLO. Defaults to the machine's
	// host name.
	HELO string
	// From is the sender, with or without a display name:
	// "Herald Status <status@herald.example>". Required. Its domain is
	// the right-hand side of every Message-ID, and its address the
	// envelope sender (MAIL FROM).
	From string
	// ReplyTo is the Reply-To address. Defaults to none; a message's
	// own Reply-To header wins.
	ReplyTo string
	// ListID is the List-Id (RFC 2919) of messages whose headers set
	// none: "Herald notifications <notifications.herald.example>" or
	// just "notifications.herald.example". Defaults to none.
	ListID string
	// FeedbackID is the sender identifier (Gmail's SenderId: 5 to 15
	// characters, no colon nor space) ending the Feedback-ID header of
	// messages whose headers set none:
	// "[<incident id>:]<mail type>:<FeedbackID>", the mail type being
	// "incident-<status>" or "notice-<kind>"
	// ("TSR-1610:incident-monitoring:herald"). It is the format package
	// templates writes, so that Gmail reports complaints per incident and
	// per type of mail. Defaults to none (no header).
	FeedbackID string
	// Pool is how many SMTP connections Herald keeps open and reuses,
	// and so how many messages are in flight at once. Defaults to 4.
	Pool int
	// Rate is the most messages per second sent through the channel, 0
	// for no limit. Defaults to 0.
	Rate float64
	// Burst is how many messages may go at once above Rate after a
	// quiet period. Defaults to Pool. Ignored without Rate.
	Burst int
	// DialTimeout bounds connecting: dial, greeting, EHLO, STARTTLS and
	// AUTH. Defaults to 15 s.
	DialTimeout time.Duration
	// SendTimeout bounds one message's transaction on an open
	// connection, from MAIL FROM to the server's reply to the content.
	// Defaults to 60 s.
	SendTimeout time.Duration
	// IdleTimeout is how long an unused connection is kept open.
	// Defaults to 30 s.
	IdleTimeout time.Duration
	// MaxPerConnection is how many messages one connection carries
	// before Herald closes it and opens a fresh one (servers limit it).
	// Defaults to 100.
	MaxPerConnection int
	// DKIM, when set, signs every message.
	DKIM *DKIM
	// Now is the clock that dates messages (the Date header) and ages
	// idle connections. Defaults to time.Now. (DKIM signatures carry
	// the real time: the DKIM library reads it itself.)
	Now func() time.Time
	// Logger receives debug lines about sends and warnings about the
	// server connection (never credentials). Defaults to a logger that
	// discards.
	Logger *slog.Logger
}

// DKIM configures DKIM signing (RFC 6376). See the package documentation
// for the DNS record to publish.
type DKIM struct {
	// Domain is the signing domain (d=): From's domain or a parent of
	// it, for DMARC alignment. Required.
	Domain string
	// Selector names the key (s=); the public key is published at
	// <Selector>._domainkey.<Domain>. Required.
	Selector string
	// PrivateKey is the PEM-encoded private key: RSA (PKCS #1 or PKCS #8,
	// 2048 bits or more recommended, 1024 at least) or Ed25519 (PKCS #8).
	// Required.
	PrivateKey secret.Value
}

// Defaults.
const (
	defaultPool             = 4
	defaultDialTimeout      = 15 * time.Second
	defaultSendTimeout      = 60 * time.Second
	defaultIdleTimeout      = 30 * time.Second
	defaultMaxPerConnection = 100
)

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Port == 0 {
		c.Port = 587
		if c.TLS == TLSImplicit {
			c.Port = 465
		}
	}
	if c.Auth == "" && c.Username != "" {
		c.Auth = AuthAuto
	}
	if c.Pool == 0 {
		c.Pool = defaultPool
	}
	if c.Burst == 0 {
		c.Burst = c.Pool
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = defaultSendTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.MaxPerConnection == 0 {
		c.MaxPerConnection = defaultMaxPerConnection
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Host == "":
		return errors.New("email: Host is required")
	case strings.ContainsAny(c.Host, " \t\r\n/@[]"):
		return fmt.Errorf("email: Host %q is not a host name or address", c.Host)
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("email: Port %d out of range", c.Port)
	case c.TLS != TLSStartTLS && c.TLS != TLSImplicit && c.TLS != TLSNone:
		return fmt.Errorf("email: unknown TLS mode %q (starttls, implicit or none)", c.TLS)
	case (c.Username == "") != c.Password.IsZero():
		return errors.New("email: Username and Password go together")
	case c.Username != "" && c.TLS == TLSNone:
		return errors.New("email: credentials need TLS (starttls or implicit)")
	case c.Username == "" && c.Auth != "":
		return errors.New("email: Auth needs Username and Password")
	case c.Auth != "" && c.Auth != AuthAuto && c.Auth != AuthPlain && c.Auth != AuthLogin && c.Auth != AuthCRAMMD5:
		return fmt.Errorf("email: unknown Auth %q (plain, login, cram-md5 or auto)", c.Auth)
	case strings.ContainsAny(c.HELO, " \t\r\n"):
		return errors.New("email: HELO must be one word")
	case c.Pool < 0:
		return errors.New("email: Pool must not be negative")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return errors.New("email: Rate must be a non-negative number")
	case c.Burst < 0:
		return errors.New("email: Burst must not be negative")
	case c.DialTimeout < 0 || c.SendTimeout < 0 || c.IdleTimeout < 0:
		return errors.New("email: timeouts must not be negative")
	case c.MaxPerConnection < 0:
		return errors.New("email: MaxPerConnection must not be negative")
	}
	return c.validateMessage()
}

// validateMessage checks the fields that shape a message, those a
// [Renderer] reads.
func (c Config) validateMessage() error {
	switch {
	case strings.ContainsFunc(c.ListID, isControl):
		return errors.New("email: ListID must not hold control characters")
	case strings.ContainsFunc(c.FeedbackID, isControl) || strings.ContainsAny(c.FeedbackID, ": "):
		return errors.New("email: FeedbackID must be one Feedback-ID field: no colon, space or control character")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return fmt.Errorf("email: From: %w", err)
	}
	if c.ReplyTo != "" {
		if _, err := mail.ParseAddress(c.ReplyTo); err != nil {
			return fmt.Errorf("email: ReplyTo: %w", err)
		}
	}
	if c.DKIM != nil {
		if _, err := c.DKIM.signer(); err != nil {
			return err
		}
		if !aligned(domainOf(from.Address), c.DKIM.Domain) {
			return fmt.Errorf("email: DKIM.Domain %q is neither From's domain nor a parent of it (DMARC alignment)", c.DKIM.Domain)
		}
	}
	return nil
}

// signer parses the private key.
func (d *DKIM) signer() (crypto.Signer, error) {
	switch {
	case d.Domain == "" || d.Selector == "":
		return nil, errors.New("email: DKIM needs Domain and Selector")
	case strings.ContainsAny(d.Domain+d.Selector, " \t\r\n;=@"):
		return nil, errors.New("email: DKIM Domain or Selector holds invalid characters")
	case d.PrivateKey.IsZero():
		return nil, errors.New("email: DKIM needs PrivateKey")
	}
	key, err := gomail.PrivKeyFromPEM([]byte(d.PrivateKey.Reveal()))
	if err != nil {
		// The parser's errors never quote the key; still, say only what
		// went wrong in kind.
		return nil, errors.New("email: DKIM PrivateKey is not a PEM RSA or Ed25519 private key")
	}
	if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() < 1024 {
		return nil, fmt.Errorf("email: DKIM RSA key has %d bits, want 1024 at least (RFC 8301)", k.N.BitLen())
	}
	return key, nil
}

// DNSRecord returns the DNS TXT record to publish for d's key: its name,
// "<Selector>._domainkey.<Domain>", and its value, "v=DKIM1; k=rsa;
// p=<base64 public key>" (k=ed25519 for an Ed25519 key). A value longer
// than 255 bytes goes into the zone as several quoted strings, which
// verifiers join.
func (d *DKIM) DNSRecord() (name, value string, err error) {
	key, err := d.signer()
	if err != nil {
		return "", "", err
	}
	var k, p string
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		k, p = "ed25519", base64.StdEncoding.EncodeToString(pub)
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", "", fmt.Errorf("email: DKIM public key: %w", err)
		}
		k, p = "rsa", base64.StdEncoding.EncodeToString(der)
	default:
		return "", "", errors.New("email: DKIM key is neither RSA nor Ed25519")
	}
	return d.Selector + "._domainkey." + strings.TrimSuffix(d.Domain, "."), "v=DKIM1; k=" + k + "; p=" + p, nil
}

// aligned reports whether domain is signer or a subdomain of it (DMARC
// relaxed alignment, without the public-suffix subtleties).
func aligned(domain, signer string) bool {
	domain, signer = strings.ToLower(strings.TrimSuffix(domain, ".")), strings.ToLower(strings.TrimSuffix(signer, "."))
	return domain == signer || strings.HasSuffix(domain, "."+signer)
}

// domainOf returns the domain of an address, lower-cased.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
