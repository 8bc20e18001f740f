package webhook

import (
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

const (
	// summaryRunes is the longest provider message kept in an error.
	summaryRunes = 200
	// summaryReadBytes is how much of a failed answer's body is read for
	// its summary.
	summaryReadBytes = 1024
	// minSecretPart is the shortest query value or path segment treated
	// as a possible secret when an answer echoes the request.
	minSecretPart = 4
	// minSecretSegment is the shortest path segment treated as a possible
	// secret (tokens, not words like "hooks").
	minSecretSegment = 12
	// maxCachedTargets bounds the target cache; it is emptied when full.
	maxCachedTargets = 4096
)

// target is a checked endpoint URL and the parts of it an echoing receiver
// must not get into Herald's errors.
type target struct {
	url     string // the URL in text, as sent
	host    string
	secrets []string // longest first
}

func newTarget(u *url.URL) *target {
	t := &target{url: u.String(), host: u.Host}
	add := func(s string, min int) {
		if len(s) >= min && !slices.Contains(t.secrets, s) {
			t.secrets = append(t.secrets, s)
		}
	}
	if u.RawQuery != "" {
		add(u.RawQuery, minSecretPart)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v, minSecretPart)
				add(url.QueryEscape(v), minSecretPart)
			}
		}
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		add(seg, minSecretSegment)
		if un, err := url.PathUnescape(seg); err == nil {
			add(un, minSecretSegment)
		}
	}
	slices.SortFunc(t.secrets, func(a, b string) int { return len(b) - len(a) })
	return t
}

// targets caches checked URLs by their string form.
type targets struct {
	mu sync.RWMutex
	m  map[string]*target
}

func (c *targets) get(raw string, p egress.Policy, allowHTTP bool) (*target, error) {
	c.mu.RLock()
	t := c.m[raw]
	c.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	u, err := p.CheckURL(raw, allowHTTP)
	if err != nil {
		return nil, err
	}
	t = newTarget(u)
	c.mu.Lock()
	if len(c.m) >= maxCachedTargets {
		clear(c.m)
	}
	if c.m == nil {
		c.m = make(map[string]*target)
	}
	c.m[raw] = t
	c.mu.Unlock()
	return t, nil
}

// summarize turns the start of a failed answer's body into a short, single
// line, printable message, with the request's secret parts (echoed by
// some error pages) and the signing secret redacted.
//
// truncated says the body was cut at the read limit: a secret cut in two
// there is dropped too.
func summarize(body []byte, truncated bool, t *target, signingSecret string) string {
	var secrets []string
	for _, f := range strings.Fields(signingSecret) {
		secrets = append(secrets, f, strings.TrimPrefix(f, secretPrefix))
	}
	secrets = append(secrets, t.secrets...)
	return channels.Printable(channels.Redact(string(body), truncated, secrets...), summaryRunes)
}
