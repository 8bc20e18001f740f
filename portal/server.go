package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/quota"
	"github.com/heraldhq/herald/subscribers"
)

// Bucket names of the portal's state.
const (
	BucketSessions = "portal_sessions"
	BucketCodes    = "portal_codes"
	BucketUsed     = "portal_used_links"
	BucketLimits   = "portal_limits"
)

// Server serves the public pages. Create it with [New]; serve
// [Server.Handler]; run [Server.Run] beside it (it ends followings).
type Server struct {
	cfg      Config
	d        *dispatcher.Dispatcher
	store    *subscribers.Store
	links    *links.Sealer
	deps     Deps
	cats     catalogs
	pages    *pageSet
	catalog  *incident.Catalog
	sessions jetstream.KeyValue
	codes    jetstream.KeyValue
	used     jetstream.KeyValue
	limits   *quota.Counter
	secure   bool
	logger   *slog.Logger
}

// New opens the portal's buckets and builds its pages.
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Dispatcher == nil || deps.JetStream == nil || deps.Webhook == nil {
		return nil, errors.New("portal: a dispatcher, a JetStream context and the webhook channel are required")
	}
	cats, err := loadCatalogs()
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, d: deps.Dispatcher, store: deps.Dispatcher.Subscribers(), links: deps.Dispatcher.Links(),
		deps: deps, cats: cats, pages: pages, catalog: cfg.Catalog, logger: cfg.Logger}
	if s.catalog == nil {
		s.catalog, _ = incident.NewCatalog(incident.DefaultComponents())
	}
	u, _ := url.Parse(cfg.PublicURL)
	host := u.Hostname()
	s.secure = u.Scheme == "https" || host == "localhost" || host == "127.0.0.1" || host == "::1"
	if !s.secure {
		cfg.Logger.Warn("portal: the public URL is plain http on a remote host: cookies cannot be Secure; serve the portal over https")
	}
	kv := func(name string, ttl time.Duration) (jetstream.KeyValue, error) {
		b, err := deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, History: 1, TTL: ttl, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
			Description: "Herald public pages",
		})
		if err != nil {
			return nil, fmt.Errorf("portal: bucket %s: %w", name, err)
		}
		return b, nil
	}
	if s.sessions, err = kv(BucketSessions, cfg.SessionTTL); err != nil {
		return nil, err
	}
	if s.codes, err = kv(BucketCodes, max(cfg.CodeTTL, time.Hour)); err != nil {
		return nil, err
	}
	if s.used, err = kv(BucketUsed, max(cfg.ConfirmTTL, cfg.LoginTTL)+24*time.Hour); err != nil {
		return nil, err
	}
	longest := max(cfg.Limits.IP.Per, cfg.Limits.Address.Per, cfg.Limits.PhonePrefix.Per)
	if s.limits, err = quota.Open(ctx, deps.JetStream, quota.Config{Bucket: BucketLimits, Replicas: cfg.Replicas, MaxAge: 2 * longest}); err != nil {
		return nil, err
	}
	return s, nil
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// Handler returns the public pages' handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/subscribe"+langQuery(r), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /static/portal.css", serveCSS)
	mux.HandleFunc("GET /subscribe", s.subscribePage)
	mux.HandleFunc("POST /subscribe", s.subscribe)
	mux.HandleFunc("GET /confirm/{token}", s.confirmPage)
	mux.HandleFunc("POST /confirm/{token}", s.confirm)
	mux.HandleFunc("GET /confirm-code", s.codePage)
	mux.HandleFunc("POST /confirm-code", s.confirmCode)
	mux.HandleFunc("GET /manage", s.managePage)
	mux.HandleFunc("POST /manage", s.manageRequest)
	mux.HandleFunc("GET /manage/{token}", s.openPage)
	mux.HandleFunc("POST /manage/{token}", s.open)
	mux.HandleFunc("POST /manage/do/{action}", s.manageAction)
	mux.HandleFunc("GET /follow/{incident}", s.followPage)
	mux.HandleFunc("POST /follow/{incident}", s.follow)
	mux.HandleFunc("GET /unsubscribe/{token}", s.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe/{token}", s.unsubscribe)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.message(w, r, http.StatusNotFound, pageLocale(r, ""), "error.not_found_title", "", nil)
	})
	cop := http.NewCrossOriginProtection()
	// RFC 8058: mailbox providers post one-click unsubscriptions from
	// their servers; the sealed token is the protection there.
	cop.AddInsecureBypassPattern("POST /unsubscribe/{token}")
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.message(w, r, http.StatusForbidden, pageLocale(r, ""), "error.csrf_title", "error.csrf_text", nil)
	}))
	return s.headers(cop.Handler(mux))
}

// headers sets the security headers of every answer and bounds bodies.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if s.secure && strings.HasPrefix(s.cfg.PublicURL, "https:") {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.URL.Path != "/static/portal.css" {
			h.Set("Cache-Control", "no-store")
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// langQuery keeps the page language across a redirect.
func langQuery(r *http.Request) string {
	if l := r.FormValue("lang"); l != "" && matchLocale(l) == l {
		return "?lang=" + l
	}
	return ""
}

// Cookies.
func (s *Server) cookieName(base string) string {
	if s.secure {
		return "__Host-" + base // Secure, Path=/, no Domain: no subdomain can set it
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: s.cookieName(base), Value: value, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteStrictMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func digestHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// csrfToken returns the request's CSRF token, setting its cookie when the
// browser has none (double-submit: the form's hidden field must equal the
// cookie, which other sites can neither read nor set).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.cookieName("herald_csrf")); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := randomToken(32)
	s.setCookie(w, "herald_csrf", v, 0)
	r.AddCookie(&http.Cookie{Name: s.cookieName("herald_csrf"), Value: v})
	return v
}

// checkCSRF answers 403 and reports false unless the form carries the
// cookie's token.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, lang string) bool {
	c, err := r.Cookie(s.cookieName("herald_csrf"))
	got := r.PostFormValue("csrf")
	if err != nil || len(c.Value) < 32 || subtle.ConstantTimeCompare([]byte(c.Value), []byte(got)) != 1 {
		s.message(w, r, http.StatusForbidden, lang, "error.csrf_title", "error.csrf_text", nil)
		return false
	}
	return true
}

// clientIP is the address the request came from.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxyHeaders {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			return strings.TrimSpace(parts[len(parts)-1])
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limited is a request refused by a rate limit.
type limited struct{ retry time.Duration }

func (l *limited) Error() string { return "rate limited; retry in " + l.retry.String() }

// take counts one request of kind for subject under l, and returns a
// *limited error when the limit is reached.
func (s *Server) take(ctx context.Context, kind, subject string, l Limit) error {
	if l.N <= 0 {
		return nil
	}
	now := s.cfg.Now()
	key := quota.Key("rl", kind, subject, quota.Window(now, l.Per))
	_, ok, err := s.limits.Take(ctx, key, l.N)
	if err != nil {
		return err
	}
	if !ok {
		start := now.Truncate(l.Per)
		return &limited{retry: start.Add(l.Per).Sub(now)}
	}
	return nil
}

// limitIP applies the per-IP limit to a form.
func (s *Server) limitIP(w http.ResponseWriter, r *http.Request, lang string) bool {
	return s.check(w, r, lang, s.take(r.Context(), "ip", s.clientIP(r), s.cfg.Limits.IP))
}

// limitAddress applies the per-address limit (and, for phone numbers, the
// per-prefix one) before a message goes to address.
func (s *Server) limitAddress(ctx context.Context, channel, address string) error {
	if err := s.take(ctx, "addr", channel+":"+strings.ToLower(address), s.cfg.Limits.Address); err != nil {
		return err
	}
	if channel == "sms" {
		return s.take(ctx, "prefix", phonePrefix(address, s.cfg.Limits.PrefixDigits), s.cfg.Limits.PhonePrefix)
	}
	return nil
}

// phonePrefix is an E.164 number without its last n digits.
func phonePrefix(e164 string, n int) string {
	if len(e164) <= n+2 {
		return e164
	}
	return e164[:len(e164)-n]
}

// check answers the page an error calls for (429, 503) and reports false;
// true when err is nil.
func (s *Server) check(w http.ResponseWriter, r *http.Request, lang string, err error) bool {
	if err == nil {
		return true
	}
	var lim *limited
	if errors.As(err, &lim) {
		minutes := int(lim.retry/time.Minute) + 1
		w.Header().Set("Retry-After", strconv.Itoa(int(lim.retry/time.Second)+1))
		s.logger.Info("portal: rate limited", "path", r.URL.Path)
		s.message(w, r, http.StatusTooManyRequests, lang, "error.limit_title", "error.limit_text", []string{"minutes", strconv.Itoa(minutes)})
		return false
	}
	s.logger.Error("portal: request failed", "path", r.URL.Path, "err", err)
	s.message(w, r, http.StatusServiceUnavailable, lang, "error.unavailable_title", "error.unavailable_text", nil)
	return false
}

// markUsed records a single-use token as used; it reports false when it
// already was.
func (s *Server) markUsed(ctx context.Context, token string) (bool, error) {
	_, err := s.used.Create(ctx, "t"+digestHex(token), []byte(strconv.FormatInt(s.cfg.Now().Unix(), 10)))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// wasUsed reports whether a single-use token was used.
func (s *Server) wasUsed(ctx context.Context, token string) (bool, error) {
	_, err := s.used.Get(ctx, "t"+digestHex(token))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// linkError answers the page of a link that does not open.
func (s *Server) linkError(w http.ResponseWriter, r *http.Request, lang string, err error) {
	switch {
	case errors.Is(err, links.ErrExpired):
		s.message(w, r, http.StatusGone, lang, "link.expired_title", "link.expired_text", nil)
	case errors.Is(err, errUsed):
		s.message(w, r, http.StatusGone, lang, "link.used_title", "link.used_text", nil)
	case errors.Is(err, errGone):
		s.message(w, r, http.StatusGone, lang, "link.gone_title", "link.gone_text", nil)
	default:
		s.message(w, r, http.StatusNotFound, lang, "link.invalid_title", "link.invalid_text", nil)
	}
}

var (
	errUsed = errors.New("link already used")
	errGone = errors.New("link no longer applies")
)

// newID returns a fresh subscriber id with a prefix ("s_…").
func newID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
