package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/dispatcher"
)

// progressSource returns where the notifications of an incident's updates
// stand; dispatcher.ErrNoIncident while the incident has no snapshot.
type progressSource func(ctx context.Context, incidentID string) (*dispatcher.IncidentProgress, error)

// publishedUpdate is an update publish waits for.
type publishedUpdate struct {
	incidentID, eventID string
}

// waitPoll is how often publish --wait asks for the progress.
const waitPoll = 250 * time.Millisecond

// waitForUpdates shows each update's progress (a bar per update when
// bars is set) until every target has a final outcome or is parked, then
// prints its summary to out. It gives up at the deadline (zero: none).
func waitForUpdates(ctx context.Context, source progressSource, updates []publishedUpdate, bars bool, deadline time.Time, io *stdio) error {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	for _, u := range updates {
		up, err := waitForUpdate(ctx, source, u, bars, io.err)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				left := "its fan-out has not begun"
				if up != nil {
					left = fmt.Sprintf("%d of %d targets not handled yet", up.Total.Waiting, up.Total.Targets)
				}
				return fmt.Errorf("%s: gave up waiting (--wait-timeout): %s", u.eventID, left)
			}
			return fmt.Errorf("%s: %w", u.eventID, err)
		}
		printProgress(io.out, up)
	}
	return nil
}

// waitForUpdate polls one update's progress until it settled, and returns
// the last progress seen (nil: none yet).
func waitForUpdate(ctx context.Context, source progressSource, u publishedUpdate, bars bool, w io.Writer) (*dispatcher.UpdateProgress, error) {
	var bar *progressbar.ProgressBar
	settled := false
	defer func() {
		switch {
		case bar == nil:
		case settled:
			_ = bar.Finish()
		default:
			_ = bar.Exit() // as it stands: not full
		}
		if bar != nil {
			fmt.Fprintln(w)
		}
	}()
	var last *dispatcher.UpdateProgress
	for {
		p, err := source(ctx, u.incidentID)
		switch {
		case errors.Is(err, dispatcher.ErrNoIncident):
		case err != nil:
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		default:
			if up := p.Update(u.eventID); up != nil {
				last = up
				if bars && bar == nil && up.Total.Targets > 0 {
					bar = progressbar.NewOptions(up.Total.Targets, progressbar.OptionSetWriter(w),
						progressbar.OptionSetDescription(u.eventID), progressbar.OptionShowCount(),
						progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(false),
						progressbar.OptionThrottle(100*time.Millisecond))
				}
				if bar != nil {
					bar.ChangeMax(max(up.Total.Targets, 1))
					_ = bar.Set(up.Total.Targets - up.Total.Waiting)
				}
				if up.Settled {
					settled = true
					return up, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(waitPoll):
		}
	}
}

// printProgress writes an update's summary: its totals, then one line per
// channel.
func printProgress(w io.Writer, up *dispatcher.UpdateProgress) {
	switch up.State {
	case "quiet":
		fmt.Fprintf(w, "%s: notify false; recorded, sent to nobody\n", up.EventID)
		return
	case "late":
		fmt.Fprintf(w, "%s: older than the incident's latest update; recorded, sent to nobody\n", up.EventID)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", up.EventID, progressLine(up.Total))
	for _, name := range channels.Names() {
		if c, ok := up.Channels[name]; ok {
			fmt.Fprintf(w, "  %-8s %s\n", name, progressLine(c))
		}
	}
}

// progressLine is "12 targets: 9 delivered, 1 outboxed, 2 parked".
func progressLine(c dispatcher.ChannelProgress) string {
	parts := []string{}
	for _, p := range []struct {
		n    int
		what string
	}{
		{c.Delivered, "delivered"}, {c.Outboxed, "outboxed"}, {c.Failed, "failed"}, {c.DeadLettered, "dead-lettered"},
		{c.Skipped, "skipped"}, {c.Recalled, "recalled"}, {c.Parked, "parked (retry or deferral)"}, {c.Waiting, "waiting"},
	} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d targets", c.Targets)
	}
	return fmt.Sprintf("%d targets: %s", c.Targets, strings.Join(parts, ", "))
}

// apiProgress reads an incident's progress from GET /v1/incidents/{id}.
func apiProgress(client *http.Client, base, token string) progressSource {
	return func(ctx context.Context, incidentID string) (*dispatcher.IncidentProgress, error) {
		status, data, err := adminCall(ctx, client, http.MethodGet, strings.TrimRight(base, "/")+"/v1/incidents/"+url.PathEscape(incidentID), token, nil)
		switch {
		case err != nil:
			return nil, err
		case status == http.StatusNotFound:
			return nil, dispatcher.ErrNoIncident
		case status != http.StatusOK:
			return nil, fmt.Errorf("server answered %d: %s", status, strings.TrimSpace(string(data)))
		}
		var ans struct {
			Progress []dispatcher.UpdateProgress `json:"progress"`
		}
		if err := json.Unmarshal(data, &ans); err != nil {
			return nil, fmt.Errorf("unreadable answer: %w", err)
		}
		return &dispatcher.IncidentProgress{IncidentID: incidentID, Updates: ans.Progress}, nil
	}
}

// adminCall sends one request to the admin API with the token (and a JSON
// body, when body is not nil), and returns the answer's status and body
// (up to 16 MiB).
func adminCall(ctx context.Context, client *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, data, err
}
