package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

// PollConfig is what every poller shares.
type PollConfig struct {
	// Name identifies the source in the store (cursor, lease) and in
	// GET /v1/sources: letters, digits, '-' and '_'. Required.
	Name string
	// Interval between two polls. Defaults to 60 s.
	Interval time.Duration
	// MaxBackoff bounds the delay after consecutive failures (the
	// interval doubles with each, from two intervals on the first).
	// Defaults to 30 min.
	MaxBackoff time.Duration
	// MaxBytes bounds an answer's body. Defaults to 8 MiB.
	MaxBytes int64
	// Client makes the requests. Build it with egress.NewClient, so the
	// page is reached through the same SSRF guard as webhooks. Required.
	Client *http.Client
	// UserAgent is sent with each request. Defaults to
	// "Herald status ingest".
	UserAgent string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c PollConfig) WithDefaults() PollConfig {
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Minute
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 8 << 20
	}
	if c.UserAgent == "" {
		c.UserAgent = "Herald status ingest"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c PollConfig) validate() error {
	switch {
	case !validName(c.Name):
		return fmt.Errorf("ingest: source name %q: want 1 to 64 letters, digits, '-' or '_'", c.Name)
	case c.Interval < time.Second:
		return fmt.Errorf("ingest: source %s: the interval must be at least 1s", c.Name)
	case c.MaxBackoff < c.Interval:
		return fmt.Errorf("ingest: source %s: max_backoff must not be shorter than the interval", c.Name)
	case c.MaxBytes < 0:
		return fmt.Errorf("ingest: source %s: the body limit must not be negative", c.Name)
	case c.Client == nil:
		return fmt.Errorf("ingest: source %s: an HTTP client is required", c.Name)
	}
	return nil
}

// validName reports whether s may name a source (a bucket key part).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkPageURL checks a configured source URL: absolute http(s), no
// credentials, no query or fragment kept for base URLs.
func checkPageURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: want an absolute http(s) URL", egress.ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in URLs are not allowed", egress.ErrInvalidURL)
	}
	return u, nil
}

// HTTPError is an answer of the page other than 200 and 304.
type HTTPError struct {
	// Path is the path of the URL asked for.
	Path string
	// Status is the HTTP status.
	Status int
	// RetryAfter is the page's Retry-After (429, 503), zero without one.
	RetryAfter time.Duration
}

// Error names the path and the status.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d %s", e.Path, e.Status, http.StatusText(e.Status))
}

// fetched is one answer.
type fetched struct {
	body        []byte
	status      int
	notModified bool
	validators  Validators
}

// fetch GETs u with the validators of its last answer. A 304 comes back
// as notModified; a status other than 200 and 304 as an *HTTPError.
func (p *poller) fetch(ctx context.Context, u *url.URL, v Validators, accept string) (*fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	if v.ETag != "" {
		req.Header.Set("If-None-Match", v.ETag)
	}
	if v.LastModified != "" {
		req.Header.Set("If-Modified-Since", v.LastModified)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		// The *url.Error would quote the URL; the cause is enough.
		return nil, fmt.Errorf("GET %s: %w", u.Path, egress.Cause(err))
	}
	defer func() { _ = egress.DrainClose(resp.Body, 64<<10) }()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return &fetched{status: resp.StatusCode, notModified: true, validators: v}, nil
	case http.StatusOK:
	default:
		return nil, &HTTPError{Path: u.Path, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), p.cfg.Now())}
	}
	body, err := egress.ReadLimited(resp.Body, p.cfg.MaxBytes+1)
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", u.Path, egress.Cause(err))
	}
	if int64(len(body)) > p.cfg.MaxBytes {
		return nil, fmt.Errorf("GET %s: the body is over %d bytes", u.Path, p.cfg.MaxBytes)
	}
	return &fetched{body: body, status: resp.StatusCode, validators: Validators{
		ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Read: v.Read,
	}}, nil
}

// retryAfter parses a Retry-After value: seconds or an HTTP date, at most
// channels.MaxRetryAfter (a page asking for years is polled again in a day).
func retryAfter(v string, now time.Time) time.Duration {
	d, _ := channels.ParseRetryAfter(v, now) // capped at a day
	return d
}

// pollFunc reads a source once and publishes what is new. It updates the
// cursor's resources as each is fully handled, and returns the number of
// events published, the last HTTP status seen, and the first error.
type pollFunc func(ctx context.Context, cur *Cursor) (published int, status int, err error)

// poller runs a pollFunc at an interval, under the source's lease, with
// backoff, keeping the cursor in the store.
type poller struct {
	cfg   PollConfig
	kind  string
	url   string
	store *Store
	poll  pollFunc
	// paths are the URL paths the source reads.
	paths []string

	mu      sync.Mutex
	next    time.Time
	leading bool
}

func newPoller(cfg PollConfig, kind, url string, paths []string, store *Store, poll pollFunc) (*poller, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("ingest: a store is required")
	}
	return &poller{cfg: cfg, kind: kind, url: url, paths: paths, store: store, poll: poll}, nil
}

// PollReport says what one poll did.
type PollReport struct {
	// Polled is false when another process holds the lease (Holder).
	Polled bool
	Holder string
	// Published counts the events published.
	Published int
	// Status is the last HTTP status seen.
	Status int
	// Next is when the poller polls again.
	Next time.Time
}

// PollOnce polls the source now if this process holds (or takes) its
// lease, publishes what is new, and records the outcome in the cursor.
// The error is the poll's; the report says when to poll next (later after
// failures: see [PollConfig].MaxBackoff).
func (p *poller) PollOnce(ctx context.Context) (PollReport, error) {
	now := p.cfg.Now()
	ok, holder, err := p.store.Acquire(ctx, p.cfg.Name, p.cfg.Interval+p.cfg.Interval/2)
	if err != nil {
		rep := PollReport{Next: p.plan(now, 1, 0)}
		p.setLocal(rep.Next, false)
		return rep, err
	}
	if !ok {
		rep := PollReport{Holder: holder, Next: now.Add(p.cfg.Interval)}
		p.setLocal(rep.Next, false)
		return rep, nil
	}
	cur, _, err := p.store.LoadCursor(ctx, p.cfg.Name)
	switch {
	case errors.Is(err, ErrCorrupt):
		// Start again, as a source already read: the records of what was
		// published keep anything from going out twice, and nothing new
		// is taken for history.
		p.cfg.Logger.Warn("source cursor unreadable; polling without validators", "source", p.cfg.Name, "err", err)
		cur = Cursor{Resources: map[string]Validators{}}
		for _, path := range p.paths {
			cur.Resources[path] = Validators{Read: true}
		}
	case err != nil:
		rep := PollReport{Next: p.plan(now, 1, 0)}
		p.setLocal(rep.Next, true)
		return rep, err
	}
	if cur.Resources == nil {
		cur.Resources = map[string]Validators{}
	}
	published, status, pollErr := p.poll(ctx, &cur)
	end := p.cfg.Now()
	cur.LastPoll, cur.Holder, cur.Published = &end, p.store.Holder(), cur.Published+int64(published)
	if status != 0 {
		cur.LastStatus = status
	}
	var wait time.Duration
	if pollErr != nil {
		cur.Failures++
		cur.LastError = pollErr.Error()
		var he *HTTPError
		if errors.As(pollErr, &he) {
			wait = he.RetryAfter
		}
		p.cfg.Logger.Warn("source poll failed", "source", p.cfg.Name, "failures", cur.Failures, "err", pollErr)
	} else {
		cur.Failures, cur.LastError, cur.LastSuccess = 0, "", &end
	}
	next := p.plan(end, cur.Failures, wait)
	cur.NextPoll = &next
	// Hold the lease until just after the next poll, so that nobody
	// else polls meanwhile, and a successor takes over if this process
	// stops.
	if _, _, err := p.store.Acquire(ctx, p.cfg.Name, next.Sub(end)+p.cfg.Interval); err != nil && pollErr == nil {
		pollErr = err
	}
	if err := p.store.saveCursor(context.WithoutCancel(ctx), p.cfg.Name, cur); err != nil && pollErr == nil {
		pollErr = err
	}
	p.setLocal(next, true)
	return PollReport{Polled: true, Holder: p.store.Holder(), Published: published, Status: status, Next: next}, pollErr
}

// plan returns when to poll after a poll ending at end with failures
// consecutive failures: one interval after a success; after failures, two
// intervals, doubling, up to MaxBackoff, or the page's Retry-After when
// longer.
func (p *poller) plan(end time.Time, failures int, retryAfter time.Duration) time.Time {
	d := p.cfg.Interval
	for i := 0; i < failures && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	return end.Add(max(d, retryAfter))
}

func (p *poller) setLocal(next time.Time, leading bool) {
	p.mu.Lock()
	p.next, p.leading = next, leading
	p.mu.Unlock()
}

// Run polls until ctx ends, then gives up the lease so that another
// process takes over at once.
func (p *poller) Run(ctx context.Context) error {
	p.cfg.Logger.Info("source polling", "source", p.cfg.Name, "kind", p.kind, "interval", p.cfg.Interval)
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.store.Release(rctx, p.cfg.Name); err != nil {
			p.cfg.Logger.Warn("source lease not released", "source", p.cfg.Name, "err", err)
		}
	}()
	for {
		rep, _ := p.PollOnce(ctx) // logged and recorded by PollOnce
		t := time.NewTimer(max(rep.Next.Sub(p.cfg.Now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Status reports the source's last poll, validators and errors, as the
// cursor shared by every process has them.
func (p *poller) Status(ctx context.Context) (SourceStatus, error) {
	st := SourceStatus{Name: p.cfg.Name, Kind: p.kind, URL: p.url, Interval: p.cfg.Interval.String()}
	p.mu.Lock()
	st.Polling = p.leading
	p.mu.Unlock()
	cur, _, err := p.store.LoadCursor(ctx, p.cfg.Name)
	if err != nil {
		return st, err
	}
	st.LastPoll, st.LastSuccess, st.LastStatus = cur.LastPoll, cur.LastSuccess, cur.LastStatus
	st.LastError, st.Failures, st.NextPoll = cur.LastError, cur.Failures, cur.NextPoll
	st.Published, st.Holder = cur.Published, cur.Holder
	for _, path := range slices.Sorted(maps.Keys(cur.Resources)) {
		v := cur.Resources[path]
		st.Resources = append(st.Resources, ResourceStatus{Path: path, ETag: v.ETag, LastModified: v.LastModified})
	}
	return st, nil
}
