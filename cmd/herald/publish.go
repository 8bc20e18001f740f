package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

func cmdPublish(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("publish", "publish [flags] FILE|-", io)
	var cf connFlags
	cf.register(fs)
	server := fs.String("server", "", "publish through a running Herald's HTTP API at this base `URL` instead of NATS")
	token := fs.String("token", "", "admin `token` for --server (default env HERALD_ADMIN_TOKEN, then <data>/admin-token)")
	allowFallback := fs.Bool("allow-fallback", false, "publish updates that lack languages require_locales asks for their priority")
	wait := fs.Bool("wait", false, "wait until every target of each update has a final outcome or is parked, showing the progress, then print each update's summary")
	progress := fs.String("progress", "auto", "with --wait, a progress bar per update: auto (on a terminal), always or never")
	waitTimeout := fs.Duration("wait-timeout", 30*time.Minute, "with --wait, give up after this `duration` (exit 1); 0 waits without limit")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *progress {
	case "auto", "always", "never":
	default:
		return usagef("--progress must be auto, always or never")
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

	var send func(raw []byte) (*publishAnswer, error)
	var source progressSource
	if *server != "" {
		tok := *token
		if tok == "" {
			tok = adminToken(cfg)
		}
		client := &http.Client{Timeout: 30 * time.Second}
		send = func(raw []byte) (*publishAnswer, error) {
			return postEvent(ctx, client, *server, tok, raw, *allowFallback)
		}
		source = apiProgress(client, *server, tok)
	} else {
		s, err := cf.open(ctx, io)
		if err != nil {
			return err
		}
		defer s.close()
		p, err := newPublisher(ctx, cfg, s, *allowFallback)
		if err != nil {
			return err
		}
		send = p.publish
		source = dispatcher.NewProgress(s.topo).Incident
	}
	var invalid, failed int
	var published []publishedUpdate
	for _, ev := range events {
		res, err := send(ev.raw)
		var fe incident.FieldErrors
		var tl *incident.TooLargeError
		var missing *dispatcher.MissingLocalesError
		if err == nil {
			published = append(published, publishedUpdate{incidentID: res.IncidentID, eventID: res.ID})
		}
		switch {
		case err == nil && res.Duplicate:
			fmt.Fprintf(io.out, "%s: %s already published (stream seq %d); nothing new stored\n", ev.where, res.ID, res.StreamSeq)
		case err == nil:
			fmt.Fprintf(io.out, "%s: %s published (stream seq %d)\n", ev.where, res.ID, res.StreamSeq)
			printCoverage(io.out, res.Coverage)
		case errors.As(err, &missing):
			invalid++
			fmt.Fprintf(io.err, "%s: refused: %v\n", ev.where, err)
			if res != nil {
				printCoverage(io.err, res.Coverage)
			}
		case errors.As(err, &fe), errors.As(err, &tl):
			invalid++
			fmt.Fprintf(io.err, "%s: invalid event: %v\n", ev.where, err)
		default:
			failed++
			fmt.Fprintf(io.err, "%s: not published: %v\n", ev.where, err)
		}
	}
	if *wait && len(published) > 0 {
		var deadline time.Time
		if *waitTimeout > 0 {
			deadline = time.Now().Add(*waitTimeout)
		}
		bars := *progress == "always" || (*progress == "auto" && isTerminal(io.err))
		if err := waitForUpdates(ctx, source, published, bars, deadline, io); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d events not published", failed, len(events))
	case invalid > 0:
		return usagef("%d of %d events invalid or refused", invalid, len(events))
	}
	return nil
}

// publishAnswer is a publish's result with the update's translation
// coverage (nil when the server did not report one).
type publishAnswer struct {
	dispatcher.PublishResult
	Coverage *dispatcher.Coverage `json:"coverage"`
}

// publisher publishes straight to NATS, reporting each update's coverage
// among the subscribers stored now.
type publisher struct {
	ctx           context.Context
	cfg           *fileConfig
	s             *session
	index         *subscribers.Index
	renderer      *templates.Renderer
	unrated       incident.Priority
	maxBytes      int
	allowFallback bool
}

func newPublisher(ctx context.Context, cfg *fileConfig, s *session, allowFallback bool) (*publisher, error) {
	catalog, err := cfg.catalog()
	if err != nil {
		return nil, &usageError{err}
	}
	renderer, err := cfg.renderer(catalog, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, &usageError{err}
	}
	ix, err := subscribers.Load(ctx, s.topo.Subscribers, nil)
	if err != nil {
		return nil, err
	}
	dcfg := cfg.dispatcherConfig().WithDefaults()
	return &publisher{ctx: ctx, cfg: cfg, s: s, index: ix, renderer: renderer, unrated: dcfg.UnratedPriority,
		maxBytes: dcfg.MaxEventBytes, allowFallback: allowFallback}, nil
}

// publish validates one event, checks its languages and publishes it.
func (p *publisher) publish(raw []byte) (*publishAnswer, error) {
	ev, err := incident.Decode(raw, p.maxBytes)
	if err != nil {
		return nil, err
	}
	cov, err := dispatcher.UpdateCoverage(p.index, p.renderer, ev, p.unrated, time.Now())
	if err != nil {
		return nil, err
	}
	if err := dispatcher.CheckLocales(p.renderer, p.cfg.RequireLocales, ev, p.unrated, cov); err != nil && !p.allowFallback {
		return &publishAnswer{Coverage: cov}, err
	}
	res, err := dispatcher.PublishDecoded(p.ctx, p.s.b.JS, ev, raw)
	if err != nil {
		return nil, err
	}
	return &publishAnswer{PublishResult: *res, Coverage: cov}, nil
}

// printCoverage writes an update's translation coverage, one line per
// language of its audience.
func printCoverage(w io.Writer, cov *dispatcher.Coverage) {
	if cov == nil {
		return
	}
	carried := strings.Join(cov.Carried, ", ")
	if carried == "" {
		carried = "none identified (the text goes out whole)"
	}
	fmt.Fprintf(w, "  languages: %s; audience %d subscribers, %d get a fallback\n", carried, cov.Subscribers, cov.Fallback)
	for _, l := range cov.Locales {
		if l.Carried {
			fmt.Fprintf(w, "  %-4s carried      %d subscribers\n", l.Locale, l.Subscribers)
			continue
		}
		fmt.Fprintf(w, "  %-4s not carried  %d subscribers, %d read it in %s\n", l.Locale, l.Subscribers, l.Fallback, l.WrittenIn)
	}
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
// (one object per line; blank lines and lines starting with # skipped),
// after a UTF-8 byte order mark if there is one.
func splitEvents(data []byte) ([]rawEvent, error) {
	data = incident.TrimBOM(data)
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

// postEvent publishes through POST /v1/incidents. Refusals come back as
// the errors a local publish gives: incident.FieldErrors naming the fields,
// *incident.TooLargeError, *dispatcher.MissingLocalesError.
func postEvent(ctx context.Context, client *http.Client, base, token string, raw []byte, allowFallback bool) (*publishAnswer, error) {
	u := strings.TrimRight(base, "/") + "/v1/incidents"
	if allowFallback {
		u += "?allow_fallback=true"
	}
	code, body, err := adminCall(ctx, client, http.MethodPost, u, token, raw)
	if err != nil {
		return nil, err
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	var refusal struct {
		Error    string               `json:"error"`
		Fields   incident.FieldErrors `json:"fields"`
		Missing  []string             `json:"missing_locales"`
		Coverage *dispatcher.Coverage `json:"coverage"`
		Priority incident.Priority    `json:"priority"`
		Limit    int                  `json:"limit"`
	}
	switch code {
	case http.StatusAccepted:
		var res publishAnswer
		if err := json.Unmarshal(body, &res); err != nil {
			return nil, fmt.Errorf("unreadable answer: %w", err)
		}
		return &res, nil
	case http.StatusBadRequest:
		if err := json.Unmarshal(body, &refusal); err != nil {
			return nil, fmt.Errorf("server answered %s: %s", status, strings.TrimSpace(string(body)))
		}
		if len(refusal.Missing) > 0 {
			// The priority checked is the server's answer: an unrated
			// update is checked as the server's unrated priority.
			return &publishAnswer{Coverage: refusal.Coverage}, &dispatcher.MissingLocalesError{Priority: refusal.Priority, Missing: refusal.Missing}
		}
		if len(refusal.Fields) > 0 {
			return nil, refusal.Fields
		}
		return nil, incident.FieldErrors{{Field: "(event)", Message: refusal.Error}}
	case http.StatusRequestEntityTooLarge:
		if err := json.Unmarshal(body, &refusal); err != nil || refusal.Limit <= 0 {
			return nil, fmt.Errorf("server answered %s: %s", status, strings.TrimSpace(string(body)))
		}
		return nil, &incident.TooLargeError{Size: len(raw), Limit: refusal.Limit}
	default:
		return nil, fmt.Errorf("server answered %s: %s", status, strings.TrimSpace(string(body)))
	}
}

// adminToken finds the admin token for API calls: the environment, the
// config, then the file a local serve keeps in the data directory.
func adminToken(cfg *fileConfig) string {
	if !cfg.AdminToken.IsZero() {
		return cfg.AdminToken.Reveal()
	}
	data, err := os.ReadFile(filepath.Join(cfg.Data, "admin-token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
