package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
)

func cmdPublish(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("publish", "publish [flags] FILE|-", io)
	var cf connFlags
	cf.register(fs)
	server := fs.String("server", "", "publish through a running Herald's HTTP API at this base `URL` instead of NATS")
	token := fs.String("token", "", "admin `token` for --server (default env HERALD_ADMIN_TOKEN, then <data>/admin-token)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("expected one FILE (or - for stdin), got %d arguments", fs.NArg())
	}
	data, err := readInput(fs.Arg(0), io.in)
	if err != nil {
		return err
	}
	events, err := splitEvents(data)
	if err != nil {
		return &usageError{err}
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	maxBytes := cfg.Dispatch.MaxEventBytes

	var send func(raw []byte) (*dispatcher.PublishResult, error)
	if *server != "" {
		tok := *token
		if tok == "" {
			tok = adminToken(cfg, io)
		}
		client := &http.Client{Timeout: 30 * time.Second}
		send = func(raw []byte) (*dispatcher.PublishResult, error) { return postEvent(ctx, client, *server, tok, raw) }
	} else {
		s, err := cf.open(ctx, io)
		if err != nil {
			return err
		}
		defer s.close()
		send = func(raw []byte) (*dispatcher.PublishResult, error) {
			return dispatcher.PublishEvent(ctx, s.b.JS, raw, maxBytes)
		}
	}
	var invalid, failed int
	for _, ev := range events {
		res, err := send(ev.raw)
		var fe incident.FieldErrors
		var tl *incident.TooLargeError
		var rejected *rejectedError
		switch {
		case err == nil && res.Duplicate:
			fmt.Fprintf(io.out, "%s: %s already published (stream seq %d); nothing new stored\n", ev.where, res.ID, res.StreamSeq)
		case err == nil:
			fmt.Fprintf(io.out, "%s: %s published (stream seq %d)\n", ev.where, res.ID, res.StreamSeq)
		case errors.As(err, &fe), errors.As(err, &tl), errors.As(err, &rejected):
			invalid++
			fmt.Fprintf(io.err, "%s: invalid event: %v\n", ev.where, err)
		default:
			failed++
			fmt.Fprintf(io.err, "%s: not published: %v\n", ev.where, err)
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d events not published", failed, len(events))
	case invalid > 0:
		return usagef("%d of %d events invalid", invalid, len(events))
	}
	return nil
}

// readInput reads a file, or stdin for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, &usageError{err}
	}
	return data, nil
}

type rawEvent struct {
	where string // "line 3", "event 2"
	raw   []byte
}

// splitEvents accepts one JSON object, a JSON array of objects, or JSONL
// (one object per line; blank lines and lines starting with # skipped).
func splitEvents(data []byte) ([]rawEvent, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("no events in the input")
	case trimmed[0] == '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(trimmed, &arr); err != nil {
			return nil, fmt.Errorf("JSON array: %w", err)
		}
		out := make([]rawEvent, len(arr))
		for i, r := range arr {
			out[i] = rawEvent{where: fmt.Sprintf("event %d", i+1), raw: r}
		}
		return out, nil
	case trimmed[0] == '{' && json.Valid(trimmed) && bytes.Count(trimmed, []byte("\n{")) == 0:
		return []rawEvent{{where: "event 1", raw: trimmed}}, nil
	}
	var out []rawEvent
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		out = append(out, rawEvent{where: fmt.Sprintf("line %d", i+1), raw: line})
	}
	return out, nil
}

// rejectedError is the HTTP API's refusal of an event (400, 413).
type rejectedError struct{ msg string }

func (e *rejectedError) Error() string { return e.msg }

// postEvent publishes through POST /v1/incidents.
func postEvent(ctx context.Context, client *http.Client, base, token string, raw []byte) (*dispatcher.PublishResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/incidents", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		var res dispatcher.PublishResult
		if err := json.Unmarshal(body, &res); err != nil {
			return nil, fmt.Errorf("unreadable answer: %w", err)
		}
		return &res, nil
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &rejectedError{msg: orDefault(e.Error, resp.Status)}
	default:
		return nil, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
}

// adminToken finds the admin token for API calls: the environment, the
// config, then the file a local serve keeps in the data directory.
func adminToken(cfg *fileConfig, _ *stdio) string {
	if !cfg.AdminToken.IsZero() {
		return cfg.AdminToken.Reveal()
	}
	data, err := os.ReadFile(filepath.Join(cfg.Data, "admin-token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
