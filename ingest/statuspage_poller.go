package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The paths of the Statuspage public API the poller reads.
const (
	PathIncidents    = "/api/v2/incidents.json"
	PathMaintenances = "/api/v2/scheduled-maintenances.json"
)

// StatuspagePollerConfig configures a [StatuspagePoller].
type StatuspagePollerConfig struct {
	PollConfig
	// URL is the page's base URL, e.g. https://status.example.com.
	// Required.
	URL string
	// Mapping converts Statuspage's components, impacts and statuses.
	Mapping Mapping
}

// StatuspagePoller reads a Statuspage page's public API at an interval
// and publishes the updates not published before (by it, another
// process, or the webhook receiver). It asks with If-None-Match and
// If-Modified-Since, so an unchanged page costs a 304; backs off on
// errors, honouring Retry-After; and keeps its cursor in the store, so a
// restart or another process resumes without publishing anything twice
// or missing anything. One process polls at a time (the source's lease).
//
// The first read of each list (until a poll has handled all of it and
// stored its cursor) records what the page already shows without
// publishing it, except the latest update of each incident or maintenance
// still open; an incident already recorded is not taken for history again
// (see [Store.Publish]).
type StatuspagePoller struct {
	*poller
	base    *url.URL
	mapping Mapping
}

// NewStatuspagePoller returns a poller of cfg.URL publishing through store.
func NewStatuspagePoller(cfg StatuspagePollerConfig, store *Store) (*StatuspagePoller, error) {
	base, err := checkPageURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ingest: source %s: %w", cfg.Name, err)
	}
	if err := cfg.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("ingest: source %s: %w", cfg.Name, err)
	}
	base.Path, base.RawQuery, base.Fragment = strings.TrimSuffix(base.Path, "/"), "", ""
	sp := &StatuspagePoller{base: base, mapping: cfg.Mapping}
	if sp.poller, err = newPoller(cfg.PollConfig, "statuspage-api", base.String(), []string{PathIncidents, PathMaintenances}, store, sp.pollOnce); err != nil {
		return nil, err
	}
	return sp, nil
}

// pollOnce reads both lists and publishes what is new in each.
func (sp *StatuspagePoller) pollOnce(ctx context.Context, cur *Cursor) (int, int, error) {
	total, status := 0, 0
	var errs []error
	for _, path := range []string{PathIncidents, PathMaintenances} {
		n, st, err := sp.pollList(ctx, cur, path)
		total += n
		if st != 0 {
			status = st
		}
		var he *HTTPError
		if errors.As(err, &he) {
			status = he.Status
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, status, errors.Join(errs...)
}

// pollList reads one list and publishes its new updates, oldest incident
// first. The list's validators are kept only once every incident in it
// is handled, so that a failure has the next poll read it again.
func (sp *StatuspagePoller) pollList(ctx context.Context, cur *Cursor, path string) (int, int, error) {
	u := *sp.base
	u.Path = sp.base.Path + path
	v := cur.Resources[path]
	f, err := sp.fetch(ctx, &u, v, "application/json")
	if err != nil {
		return 0, 0, err
	}
	if f.notModified {
		return 0, f.status, nil
	}
	list, err := ParseStatuspageList(f.body)
	if err != nil {
		return 0, f.status, fmt.Errorf("GET %s: %w", path, err)
	}
	incidents := list.Incidents
	if path == PathMaintenances {
		incidents = list.ScheduledMaintenances
	}
	slices.SortStableFunc(incidents, func(a, b StatuspageIncident) int {
		return firstTime(&a).Compare(firstTime(&b))
	})
	published := 0
	var errs []error
	for i := range incidents {
		inc, err := sp.mapping.Convert(&incidents[i])
		if err != nil {
			sp.cfg.Logger.Warn("Statuspage incident not converted", "source", sp.cfg.Name, "err", err)
			continue // not convertible now, nor later: not a reason to read again
		}
		for _, perr := range inc.Problems {
			sp.cfg.Logger.Warn("Statuspage update not converted", "source", sp.cfg.Name, "err", perr)
		}
		res, err := sp.store.Publish(ctx, SourceKindStatuspage, inc, !v.Read)
		published += len(res.Published)
		if len(res.Published) > 0 {
			sp.cfg.Logger.Info("Statuspage updates published", "source", sp.cfg.Name, "incident", inc.ID, "count", len(res.Published))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return published, f.status, errors.Join(errs...)
	}
	f.validators.Read = true
	cur.Resources[path] = f.validators
	return published, f.status, nil
}

// firstTime orders incidents: created_at, else their first update.
func firstTime(in *StatuspageIncident) (t time.Time) {
	if in.CreatedAt != nil {
		return *in.CreatedAt
	}
	for _, u := range in.Updates {
		if ut := updateTime(u); !ut.IsZero() && (t.IsZero() || ut.Before(t)) {
			t = ut
		}
	}
	return t
}
