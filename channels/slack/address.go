package slack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/heraldhq/herald/channels"
)

// maxCachedHooks bounds the webhook cache; it is emptied when full.
const maxCachedHooks = 4096

// IsChannelID reports whether s has the shape of a Slack conversation id:
// "C", "G" or "D" followed by upper-case letters and digits (C0123ABCD).
func IsChannelID(s string) bool {
	if len(s) < 7 || len(s) > 32 || (s[0] != 'C' && s[0] != 'G' && s[0] != 'D') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// CheckWebhookURL checks an incoming-webhook URL as the channel does before
// sending: https (or http when allowed), no credentials, a host among hosts
// (nil: [DefaultWebhookHosts]), a path, no fragment. Errors wrap
// [ErrInvalidAddress] and never quote the URL.
func CheckWebhookURL(raw string, hosts []string, allowHTTP bool) error {
	if hosts == nil {
		hosts = DefaultWebhookHosts()
	}
	_, err := parseHook(raw, hosts, allowHTTP)
	return err
}

// hook is a checked incoming-webhook URL and what may be said of it.
type hook struct {
	u *url.URL
	// host names the webhook in errors.
	host string
	// masked names it in logs: host, an ellipsis and the last four
	// characters.
	masked string
	// key identifies it for the rate limiter (a hash, not the URL).
	key string
	// secrets are the URL's parts an echoing answer must not get into
	// Herald's errors, longest first.
	secrets []string
}

func newHook(u *url.URL, raw string) *hook {
	sum := sha256.Sum256([]byte(raw))
	h := &hook{u: u, host: u.Host, key: "hook:" + hex.EncodeToString(sum[:12])}
	h.masked = u.Scheme + "://" + u.Host + "/…"
	if tail := u.EscapedPath() + u.RawQuery; len(tail) >= 24 {
		h.masked += tail[len(tail)-4:]
	}
	add := func(s string) {
		if len(s) >= minSecretPart && !slices.Contains(h.secrets, s) {
			h.secrets = append(h.secrets, s)
		}
	}
	add(raw)
	add(u.EscapedPath())
	add(u.RawQuery)
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		add(seg)
		if un, err := url.PathUnescape(seg); err == nil {
			add(un)
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	slices.SortFunc(h.secrets, func(a, b string) int { return len(b) - len(a) })
	return h
}

// parseHook checks an incoming-webhook URL: https (or http when allowed),
// no credentials, a host among hosts, a path. Errors never quote the URL.
// The address dialled is checked by the caller's client (package egress).
func parseHook(raw string, hosts []string, allowHTTP bool) (*hook, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error quotes the URL: say only that it is malformed.
		return nil, fmt.Errorf("%w: webhook URL is malformed", ErrInvalidAddress)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		return nil, fmt.Errorf("%w: webhook URL must be https", ErrInvalidAddress)
	}
	switch {
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("%w: webhook URL has no host", ErrInvalidAddress)
	case u.User != nil:
		return nil, fmt.Errorf("%w: credentials in URLs are not allowed", ErrInvalidAddress)
	case !slices.Contains(hosts, strings.ToLower(u.Hostname())):
		return nil, fmt.Errorf("%w: %s is not a Slack webhook host", ErrInvalidAddress, channels.Printable(u.Hostname(), 64))
	case u.Fragment != "" || strings.Trim(u.Path, "/") == "":
		return nil, fmt.Errorf("%w: webhook URL on %s has no path", ErrInvalidAddress, u.Host)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%w: webhook URL has an invalid port", ErrInvalidAddress)
		}
	}
	return newHook(u, raw), nil
}

// hooks caches checked webhook URLs by their string form.
type hooks struct {
	mu sync.RWMutex
	m  map[string]*hook
}

func (c *hooks) get(raw string, hosts []string, allowHTTP bool) (*hook, error) {
	c.mu.RLock()
	h := c.m[raw]
	c.mu.RUnlock()
	if h != nil {
		return h, nil
	}
	h, err := parseHook(raw, hosts, allowHTTP)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedHooks {
		clear(c.m)
	}
	if c.m == nil {
		c.m = make(map[string]*hook)
	}
	c.m[raw] = h
	c.mu.Unlock()
	return h, nil
}
