package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mmcdole/gofeed"

	"github.com/heraldhq/herald/incident"
)

// SourceKindFeed names feed sources in the store.
const SourceKindFeed = "feed"

// FeedPollerConfig configures a [FeedPoller].
type FeedPollerConfig struct {
	PollConfig
	// URL is the Atom or RSS feed. Required.
	URL string
	// Components are the catalog ids every event of the feed names
	// (feeds say nothing of components). Defaults to none: the whole
	// platform.
	Components []string
	// Priority is every event's priority. Defaults to none (unrated).
	Priority incident.Priority
	// Statuses maps a word or phrase of an entry to a status: the one
	// found first in the entry's text (then its title) gives the entry's
	// status. Entries given are added to [DefaultFeedStatuses]. A feed
	// gives no maintenance window, so scheduled is refused.
	Statuses map[string]incident.Status
	// DefaultStatus is the status of an entry in which no word is found.
	// Defaults to investigating.
	DefaultStatus incident.Status
}

// DefaultFeedStatuses are the words a feed entry's status is read from,
// in English, French and Italian.
func DefaultFeedStatuses() map[string]incident.Status {
	return map[string]incident.Status{
		"investigating": incident.Investigating, "investigation": incident.Investigating, "indagine": incident.Investigating,
		"identified": incident.Identified, "identifié": incident.Identified, "identifiée": incident.Identified, "identificato": incident.Identified,
		"monitoring": incident.Monitoring, "surveillance": incident.Monitoring, "monitoraggio": incident.Monitoring,
		"resolved": incident.Resolved, "résolu": incident.Resolved, "résolue": incident.Resolved, "risolto": incident.Resolved,
		"postmortem": incident.Postmortem, "post-mortem": incident.Postmortem,
		"in progress": incident.InProgress, "verifying": incident.InProgress, "en cours": incident.InProgress, "in corso": incident.InProgress,
		"completed": incident.Completed, "terminée": incident.Completed, "completata": incident.Completed,
	}
}

// FeedPoller reads an Atom or RSS feed at an interval. Each entry is an
// incident (its id derived from the entry's id), and each revision of an
// entry (a new updated date, or new text when the entry has no date) an
// update of it, published once under a stable event id. Like
// [StatuspagePoller] it asks conditionally, backs off, keeps its cursor in
// the store, and on its first read publishes only the entries still open.
type FeedPoller struct {
	*poller
	*FeedConverter
}

// FeedConverter turns a feed's entries into events, as a [FeedPoller]
// configured alike does.
type FeedConverter struct {
	feed     FeedPollerConfig
	statuses map[string]incident.Status
	parser   *gofeed.Parser
}

// NewFeedConverter returns the converter of cfg (its Name, Components,
// Priority, Statuses and DefaultStatus).
func NewFeedConverter(cfg FeedPollerConfig) (*FeedConverter, error) {
	if !validName(cfg.Name) {
		return nil, fmt.Errorf("ingest: source name %q: want 1 to 64 letters, digits, '-' or '_'", cfg.Name)
	}
	if cfg.DefaultStatus == "" {
		cfg.DefaultStatus = incident.Investigating
	}
	fc := &FeedConverter{feed: cfg, statuses: DefaultFeedStatuses(), parser: gofeed.NewParser()}
	for k, v := range cfg.Statuses {
		fc.statuses[strings.ToLower(strings.TrimSpace(k))] = v
	}
	if err := fc.validate(); err != nil {
		return nil, fmt.Errorf("ingest: source %s: %w", cfg.Name, err)
	}
	return fc, nil
}

// NewFeedPoller returns a poller of cfg.URL publishing through store.
func NewFeedPoller(cfg FeedPollerConfig, store *Store) (*FeedPoller, error) {
	u, err := checkPageURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ingest: source %s: %w", cfg.Name, err)
	}
	fc, err := NewFeedConverter(cfg)
	if err != nil {
		return nil, err
	}
	fp := &FeedPoller{FeedConverter: fc}
	if fp.poller, err = newPoller(cfg.PollConfig, "feed", u.String(), []string{u.Path}, store, func(ctx context.Context, cur *Cursor) (int, int, error) {
		return fp.pollFeed(ctx, cur, u.String())
	}); err != nil {
		return nil, err
	}
	return fp, nil
}

func (fp *FeedConverter) validate() error {
	for i, c := range fp.feed.Components {
		if !incident.ValidComponentID(c) {
			return fmt.Errorf("components[%d]: %q is not a component id", i, c)
		}
	}
	if fp.feed.Priority != "" && !fp.feed.Priority.Valid() {
		return fmt.Errorf("priority %q: want P1, P2, P3 or P4", fp.feed.Priority)
	}
	for k, v := range fp.statuses {
		switch {
		case k == "":
			return errors.New("statuses: an empty word")
		case v == incident.Scheduled:
			return fmt.Errorf("statuses: %q maps to scheduled, which needs a window a feed does not give", k)
		case !v.Valid():
			return fmt.Errorf("statuses: %q maps to %q, not a status", k, v)
		}
	}
	if fp.feed.DefaultStatus == incident.Scheduled || !fp.feed.DefaultStatus.Valid() {
		return fmt.Errorf("default status %q: want a status other than scheduled", fp.feed.DefaultStatus)
	}
	return nil
}

// pollFeed reads the feed and publishes the entries' new revisions, oldest
// first.
func (fp *FeedPoller) pollFeed(ctx context.Context, cur *Cursor, raw string) (int, int, error) {
	u, _ := checkPageURL(raw)
	v := cur.Resources[u.Path]
	f, err := fp.fetch(ctx, u, v, "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.8")
	if err != nil {
		return 0, 0, err
	}
	if f.notModified {
		return 0, f.status, nil
	}
	incs, problems, err := fp.Convert(f.body)
	if err != nil {
		return 0, f.status, fmt.Errorf("GET %s: %w", u.Path, err)
	}
	for _, p := range problems {
		fp.cfg.Logger.Warn("feed entry not converted", "source", fp.cfg.Name, "err", p)
	}
	published := 0
	var errs []error
	for _, inc := range incs {
		res, err := fp.store.Publish(ctx, SourceKindFeed, inc, !v.Read)
		published += len(res.Published)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if published > 0 {
		fp.cfg.Logger.Info("feed entries published", "source", fp.cfg.Name, "count", published)
	}
	if len(errs) > 0 {
		return published, f.status, errors.Join(errs...)
	}
	f.validators.Read = true
	cur.Resources[u.Path] = f.validators
	return published, f.status, nil
}

// Convert parses a feed and turns each entry into an incident with one
// update (the entry's current revision), oldest entry first. Entries that
// cannot become a valid event are reported in problems; a document that
// is not a feed is an error.
func (fp *FeedConverter) Convert(data []byte) (incs []*Incident, problems []error, err error) {
	feed, err := fp.parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, nil, &PayloadError{Err: err}
	}
	items := slices.Clone(feed.Items)
	slices.SortStableFunc(items, func(a, b *gofeed.Item) int { return itemTime(a).Compare(itemTime(b)) })
	seen := map[string]bool{}
	for _, it := range items {
		key := entryKey(it)
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		inc, err := fp.convertItem(it, key)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		incs = append(incs, inc)
	}
	return incs, problems, nil
}

// convertItem turns one entry into an incident with one update.
func (fp *FeedConverter) convertItem(it *gofeed.Item, key string) (*Incident, error) {
	id := fp.feed.Name + "-" + shortHash(key, 16)
	title := oneLine(htmlText(it.Title))
	body := htmlText(it.Content)
	if strings.TrimSpace(body) == "" {
		body = htmlText(it.Description)
	}
	if strings.TrimSpace(title) == "" {
		title = oneLine(firstLine(body))
	}
	if strings.TrimSpace(body) == "" {
		body = title
	}
	status := fp.status(body, title)
	// The revision: the entry's date, or its text when it has none.
	rev := ""
	if t := itemTime(it); !t.IsZero() {
		rev = t.UTC().Format(time.RFC3339Nano)
	} else {
		rev = "text:" + title + "\x00" + body
	}
	ev := incident.Event{
		ID: id + ":" + shortHash(rev, 12), IncidentID: id, Status: status, Priority: fp.feed.Priority,
		Components: slices.Clone(fp.feed.Components), Title: incident.PlainText(title), Body: incident.PlainText(body),
	}
	if ev.Components == nil {
		ev.Components = []string{}
	}
	if validURL(it.Link) {
		ev.URL = it.Link
	}
	if it.PublishedParsed != nil {
		t := *it.PublishedParsed
		ev.StartedAt = &t
	}
	if t := itemTime(it); !t.IsZero() {
		ev.PublishedAt = &t
		if ev.StartedAt != nil && t.Before(*ev.StartedAt) {
			ev.StartedAt = &t
		}
	}
	ev.Sequence = 1
	if err := ev.Validate(); err != nil {
		return nil, &ConvertError{IncidentID: id, UpdateID: key, Err: err}
	}
	ev.Sequence = 0
	return &Incident{ID: id, Open: !status.Closed(), Updates: []Update{{Key: ev.ID, Event: ev, At: itemTime(it)}}}, nil
}

// status is the status of the word found first in the text, then in the
// title, else the default.
func (fp *FeedConverter) status(text, title string) incident.Status {
	for _, s := range []string{text, title} {
		if st, ok := findStatus(strings.ToLower(s), fp.statuses); ok {
			return st
		}
	}
	return fp.feed.DefaultStatus
}

// findStatus returns the status of the word of words found first in s
// (lower-case), as a whole word; the longer word wins at one place.
func findStatus(s string, words map[string]incident.Status) (incident.Status, bool) {
	best, bestLen := -1, 0
	var st incident.Status
	for w, v := range words {
		for from := 0; from < len(s); {
			i := strings.Index(s[from:], w)
			if i < 0 {
				break
			}
			i += from
			if wordAt(s, i, len(w)) {
				if best < 0 || i < best || (i == best && len(w) > bestLen) {
					best, bestLen, st = i, len(w), v
				}
				break
			}
			from = i + 1
		}
	}
	return st, best >= 0
}

// wordAt reports whether s[i:i+n] stands as a word: no letter right
// before or after it.
func wordAt(s string, i, n int) bool {
	if r, _ := utf8.DecodeLastRuneInString(s[:i]); i > 0 && unicode.IsLetter(r) {
		return false
	}
	if r, _ := utf8.DecodeRuneInString(s[i+n:]); i+n < len(s) && unicode.IsLetter(r) {
		return false
	}
	return true
}

// entryKey identifies an entry: its id (Atom id, RSS guid), else its
// link, else its title and date.
func entryKey(it *gofeed.Item) string {
	switch {
	case strings.TrimSpace(it.GUID) != "":
		return strings.TrimSpace(it.GUID)
	case strings.TrimSpace(it.Link) != "":
		return strings.TrimSpace(it.Link)
	case strings.TrimSpace(it.Title) != "":
		return strings.TrimSpace(it.Title) + "\x00" + it.Published
	}
	return ""
}

// itemTime is when an entry last changed: updated, else published.
func itemTime(it *gofeed.Item) time.Time {
	if it.UpdatedParsed != nil {
		return *it.UpdatedParsed
	}
	if it.PublishedParsed != nil {
		return *it.PublishedParsed
	}
	return time.Time{}
}

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// shortHash returns the first n characters of s's SHA-256 in lower-case
// base 32: stable, and fit for ids.
func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return lowerBase32.EncodeToString(sum[:])[:min(n, 52)]
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
