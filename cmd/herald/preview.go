package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

func cmdPreview(_ context.Context, args []string, io *stdio) error {
	fs := newFlagSet("preview", "preview --event FILE [--id ID] --locale TAG --channel CHANNEL [--reminder LEAD | --moved-from START/END] [--out DIR]", io)
	config := fs.String("config", "", "configuration `file` (component catalog, templates)")
	eventFile := fs.String("event", "", "`file` holding the update: one JSON event, or JSONL with --id")
	id := fs.String("id", "", "event `id` to pick from a JSONL file (default: the first)")
	locale := fs.String("locale", "en", "subscriber's locale `tag` (fr, fr-BE, it-CH, en-GB…)")
	channel := fs.String("channel", channels.Email, "channel: email, sms, slack or webhook")
	tz := fs.String("timezone", "Europe/Paris", "subscriber's IANA time `zone`")
	name := fs.String("name", "", "subscriber's display `name`")
	tmplDir := fs.String("templates", "", "`directory` of template overrides")
	out := fs.String("out", "", "write the files a subscriber would receive into this `directory` (HTML opens in a browser)")
	reminder := fs.Duration("reminder", 0, "render the reminder of the maintenance the update announces, this `long` before its window (24h, 1h)")
	movedFrom := fs.String("moved-from", "", "render the update as the rescheduling of a maintenance from the `window` START/END (RFC 3339)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *eventFile == "" {
		return usagef("--event is required")
	}
	valid := false
	for _, n := range channels.Names() {
		valid = valid || n == *channel
	}
	if !valid {
		return usagef("unknown channel %q", *channel)
	}
	loc, err := subscribers.LoadLocation(*tz)
	if err != nil {
		return usagef("time zone %q: %v", *tz, err)
	}
	cfg, err := loadConfig(*config, io.env)
	if err != nil {
		return &usageError{err}
	}
	if *tmplDir != "" {
		cfg.Templates.Dir = *tmplDir
	}
	catalog, err := cfg.catalog()
	if err != nil {
		return &usageError{err}
	}
	data, err := readInput(*eventFile, io.in)
	if err != nil {
		return err
	}
	raws, err := splitEvents(data)
	if err != nil {
		return &usageError{err}
	}
	var ev *incident.Event
	for _, r := range raws {
		e, err := incident.Decode(r.raw, cfg.Dispatch.MaxEventBytes)
		if err != nil {
			if *id == "" {
				return usagef("%s: %v", r.where, err)
			}
			continue
		}
		if *id == "" || e.ID == *id {
			ev = e
			break
		}
	}
	if ev == nil {
		return usagef("no event %q in %s", *id, *eventFile)
	}
	u, err := previewUpdate(ev, *reminder, *movedFrom)
	if err != nil {
		return err
	}
	// The templates as serve renders them (the configured List-Id and
	// mailto unsubscribe address included), with an example public URL
	// when none is configured.
	cfg.PublicURL = orDefault(cfg.PublicURL, "http://localhost:8080")
	r, err := cfg.renderer(catalog, slog.New(slog.DiscardHandler))
	if err != nil {
		return &usageError{err}
	}
	rc := templates.Recipient{Locale: *locale, Location: loc, Name: *name, UnsubscribeURL: cfg.PublicURL + "/unsubscribe/PREVIEW"}
	rendered, err := r.Render(u, *channel, rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.err, "locale %s (requested %s, confidence %s, fallback %v)\n", rendered.Locale, rendered.Requested, rendered.Confidence, rendered.Fallback)
	if *out != "" {
		files, err := rendered.WriteFiles(*out)
		if err != nil {
			return err
		}
		if *channel == channels.Email {
			eml, err := previewEmail(cfg, rendered, *name)
			if err != nil {
				return err
			}
			path := filepath.Join(*out, "message.eml")
			if err := os.WriteFile(path, eml, 0o644); err != nil {
				return err
			}
			files = append(files, path)
		}
		for _, f := range files {
			fmt.Fprintln(io.out, f)
		}
		return nil
	}
	switch *channel {
	case channels.Email:
		fmt.Fprintf(io.out, "Subject: %s\n\n%s\n", rendered.Subject, rendered.Text)
	case channels.SMS:
		fmt.Fprintln(io.out, rendered.Text)
	default:
		fmt.Fprintln(io.out, string(rendered.Body))
	}
	return nil
}

// previewEmail is the whole MIME message the email channel would submit
// for rendered (the configured sender, Reply-To, List-Id and DKIM; an
// example recipient).
func previewEmail(cfg *fileConfig, rendered *templates.Rendered, name string) ([]byte, error) {
	dkim, err := cfg.emailDKIM()
	if err != nil {
		return nil, err
	}
	r, err := cfg.emailRenderer(dkim, orDefault(cfg.Email.From, "Herald <status@example.com>"))
	if err != nil {
		return nil, err
	}
	msg := &channels.Message{ID: "preview", Locale: rendered.Locale, Subject: rendered.Subject, Text: rendered.Text, HTML: rendered.HTML, Headers: rendered.Headers}
	for _, a := range rendered.Attachments {
		msg.Attachments = append(msg.Attachments, channels.Attachment(a))
	}
	return r.Render(channels.Endpoint{Address: "subscriber@example.com", Name: name}, msg, time.Now())
}

// previewUpdate is the update to preview: ev itself, or, for a
// maintenance, its reminder lead before the window or its rescheduling
// from the window movedFrom ("START/END").
func previewUpdate(ev *incident.Event, reminder time.Duration, movedFrom string) (templates.Update, error) {
	u := templates.Update{Event: ev, AcceptedAt: time.Now()}
	if reminder == 0 && movedFrom == "" {
		return u, nil
	}
	switch {
	case reminder != 0 && movedFrom != "":
		return u, usagef("--reminder and --moved-from exclude each other")
	case !ev.IsMaintenance() || ev.Cancelled:
		return u, usagef("event %s is not a maintenance still to come (no scheduled_for, or cancelled)", ev.ID)
	case reminder < 0:
		return u, usagef("--reminder must be positive")
	case reminder > 0:
		u.Reminder = &templates.Reminder{Lead: reminder}
		return u, nil
	}
	from, until, ok := strings.Cut(movedFrom, "/")
	start, err1 := time.Parse(time.RFC3339, from)
	end, err2 := time.Parse(time.RFC3339, until)
	if !ok || err1 != nil || err2 != nil || !end.After(start) {
		return u, usagef("--moved-from %q: want START/END, RFC 3339, the end after the start", movedFrom)
	}
	u.Previous = &templates.Window{Start: start, End: end}
	return u, nil
}
