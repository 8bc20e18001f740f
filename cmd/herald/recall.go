package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/dispatcher"
)

func cmdRecall(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("recall", "recall [flags] EVENT_ID", io)
	var cf connFlags
	cf.register(fs)
	incidentID := fs.String("incident", "", "the update's incident `id` (default: looked up in the incident snapshots; required with --server)")
	server := fs.String("server", "", "recall through a running Herald's HTTP API at this base `URL` instead of NATS")
	token := fs.String("token", "", "admin `token` for --server (default env HERALD_ADMIN_TOKEN, then <data>/admin-token)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || strings.TrimSpace(fs.Arg(0)) == "" {
		return usagef("expected one EVENT_ID, got %d arguments", fs.NArg())
	}
	eventID := strings.TrimSpace(fs.Arg(0))
	var res *dispatcher.RecallResult
	if *server != "" {
		if *incidentID == "" {
			return usagef("--incident is required with --server")
		}
		cfg, err := cf.load(io)
		if err != nil {
			return err
		}
		tok := *token
		if tok == "" {
			tok = adminToken(cfg)
		}
		if res, err = postRecall(ctx, &http.Client{Timeout: 2 * time.Minute}, *server, tok, *incidentID, eventID); err != nil {
			return err
		}
	} else {
		s, err := cf.open(ctx, io)
		if err != nil {
			return err
		}
		defer s.close()
		res, err = dispatcher.RecallUpdate(ctx, s.b.Conn, s.topo, *incidentID, eventID, slog.New(slog.DiscardHandler))
		if errors.Is(err, dispatcher.ErrNoUpdate) {
			return usagef("no update %s has been fanned out", eventID)
		}
		if err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printRecall(io.out, res)
	return nil
}

// printRecall writes a recall's answer: what was cancelled, and the
// notifications already sent, for the correction.
func printRecall(w io.Writer, res *dispatcher.RecallResult) {
	again := ""
	if res.AlreadyRecalled {
		again = " (recalled before)"
	}
	fmt.Fprintf(w, "%s (incident %s, update %d) recalled at %s%s\n", res.EventID, res.IncidentID, res.Sequence, res.RecalledAt.Local().Format(time.DateTime), again)
	fmt.Fprintf(w, "  %d notifications cancelled and recorded recalled; %d already sent; %d over without being sent\n", res.Recalled, res.SentTotal, res.Over)
	if res.SentTotal == 0 {
		return
	}
	fmt.Fprintln(w, "  already sent (publish a correction to reach them):")
	_ = printItems(w, false, res.Sent, []string{"DELIVERY", "SUBSCRIBER", "ENDPOINT", "CHANNEL", "OUTCOME", "AT"}, func(s dispatcher.SentNotification) []string {
		return []string{s.DeliveryID, s.SubscriberID, s.EndpointID, s.Channel, string(s.Outcome), s.At.Local().Format(time.DateTime)}
	})
	if res.SentTotal > len(res.Sent) {
		fmt.Fprintf(w, "  ... and %d more: herald ledger export --event %s\n", res.SentTotal-len(res.Sent), res.EventID)
	}
}

// postRecall recalls through POST /v1/incidents/{id}/recall.
func postRecall(ctx context.Context, client *http.Client, base, token, incidentID, eventID string) (*dispatcher.RecallResult, error) {
	body, _ := json.Marshal(map[string]string{"event_id": eventID})
	u := strings.TrimRight(base, "/") + "/v1/incidents/" + url.PathEscape(incidentID) + "/recall"
	status, data, err := adminCall(ctx, client, http.MethodPost, u, token, body)
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusOK:
		var res dispatcher.RecallResult
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, fmt.Errorf("unreadable answer: %w", err)
		}
		return &res, nil
	case status == http.StatusNotFound, status == http.StatusBadRequest:
		return nil, usagef("server answered %d: %s", status, strings.TrimSpace(string(data)))
	}
	return nil, fmt.Errorf("server answered %d: %s", status, strings.TrimSpace(string(data)))
}
