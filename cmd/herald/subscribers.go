package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/subscribers"
)

func cmdSubscribers(ctx context.Context, args []string, io *stdio) error {
	usage := "subscribers import|list|get|rm [flags] ..."
	if len(args) == 0 {
		return usagef("usage: herald %s", usage)
	}
	switch args[0] {
	case "import":
		return subscribersImport(ctx, args[1:], io)
	case "list":
		return subscribersList(ctx, args[1:], io)
	case "get":
		return subscribersGet(ctx, args[1:], io)
	case "rm":
		return subscribersRemove(ctx, args[1:], io)
	}
	return usagef("unknown subcommand %q; usage: herald %s", args[0], usage)
}

// countingReader counts bytes read, for the progress bar.
type countingReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.bar != nil {
		_ = c.bar.Add(n)
	}
	return n, err
}

func subscribersImport(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("subscribers import", "subscribers import [flags] FILE", io)
	var cf connFlags
	cf.register(fs)
	format := fs.String("format", "auto", "input format: auto (by extension and content), jsonl or csv")
	dryRun := fs.Bool("dry-run", false, "validate every line without storing anything")
	progress := fs.String("progress", "auto", "progress bar: auto (on a terminal, for files over 1 MiB), always or never")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("expected one FILE")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return &usageError{err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(4096)
	var fmtSel subscribers.Format
	switch *format {
	case "auto":
		fmtSel = subscribers.DetectFormat(fs.Arg(0), head)
	case "jsonl":
		fmtSel = subscribers.JSONL
	case "csv":
		fmtSel = subscribers.CSV
	default:
		return usagef("unknown format %q", *format)
	}
	var store *subscribers.Store
	var rules subscribers.Rules
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	catalog, err := cfg.catalog()
	if err != nil {
		return &usageError{err}
	}
	allow, err := cfg.webhookAllow()
	if err != nil {
		return &usageError{err}
	}
	rules = cfg.subscriberRules(catalog, allow)
	if !*dryRun {
		s, err := cf.open(ctx, io)
		if err != nil {
			return err
		}
		defer s.close()
		store = subscribers.NewStore(s.topo.Subscribers, rules)
	}
	showBar := *progress == "always" || (*progress == "auto" && st.Size() > 1<<20 && isTerminal(io.err))
	var bar *progressbar.ProgressBar
	if showBar {
		bar = progressbar.NewOptions64(st.Size(),
			progressbar.OptionSetWriter(io.err), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("importing"), progressbar.OptionThrottle(100_000_000),
			progressbar.OptionClearOnFinish())
	}
	var created, updated, bad int
	report := func(line int, id string, err error) {
		bad++
		if bar != nil {
			_ = bar.Clear()
		}
		where := fmt.Sprintf("line %d", line)
		if id != "" {
			where += " (" + id + ")"
		}
		fmt.Fprintf(io.err, "%s: %v\n", where, err)
	}
	err = subscribers.Read(&countingReader{r: br, bar: bar}, fmtSel, func(rec subscribers.Record) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rec.Err != nil {
			report(rec.Line, "", rec.Err)
			return nil
		}
		sub := rec.Subscriber
		if *dryRun {
			if err := rules.Normalize(sub); err != nil {
				report(rec.Line, sub.ID, err)
			} else {
				created++
			}
			return nil
		}
		isNew, err := store.Put(ctx, sub)
		var fe subscribers.FieldErrors
		switch {
		case errors.As(err, &fe):
			report(rec.Line, sub.ID, err)
		case err != nil:
			return fmt.Errorf("line %d: %w", rec.Line, err)
		case isNew:
			created++
		default:
			updated++
		}
		return nil
	})
	if bar != nil {
		_ = bar.Finish()
	}
	if *dryRun {
		fmt.Fprintf(io.out, "checked %d valid subscribers, %d invalid lines (nothing stored)\n", created, bad)
	} else {
		fmt.Fprintf(io.out, "imported %d subscribers (%d new, %d updated), %d lines rejected\n", created+updated, created, updated, bad)
	}
	if err != nil {
		return err
	}
	if bad > 0 {
		return usagef("%d lines rejected", bad)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func subscribersList(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("subscribers list", "subscribers list [flags]", io)
	var cf connFlags
	cf.register(fs)
	after := fs.String("after", "", "list subscribers whose id sorts after this `id`")
	limit := fs.Int("limit", 100, "at most `n` subscribers (0: all)")
	asJSON := fs.Bool("json", false, "print JSON lines (secrets masked)")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, err := cf.open(ctx, io)
	if err != nil {
		return err
	}
	defer s.close()
	lister, err := s.topo.Subscribers.ListKeys(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for k := range lister.Keys() {
		if k > *after {
			ids = append(ids, k)
		}
	}
	sort.Strings(ids)
	if *limit > 0 && len(ids) > *limit {
		ids = ids[:*limit]
	}
	store := subscribers.NewStore(s.topo.Subscribers, subscribers.Rules{})
	subs := make([]subscribers.View, 0, len(ids))
	for _, id := range ids {
		sub, _, err := store.Get(ctx, id)
		if errors.Is(err, subscribers.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		subs = append(subs, sub.Redacted())
	}
	return printItems(io.out, *asJSON, subs, []string{"ID", "NAME", "LOCALE", "ENDPOINTS"}, func(sub subscribers.View) []string {
		var eps []string
		for _, ep := range sub.Endpoints {
			e := ep.ID + ":" + ep.Channel
			if ep.Disabled != nil {
				e += "(disabled)"
			}
			eps = append(eps, e)
		}
		return []string{sub.ID, sub.Name, sub.Locale, strings.Join(eps, " ")}
	})
}

func subscribersGet(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("subscribers get", "subscribers get [flags] ID", io)
	var cf connFlags
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("expected one subscriber ID")
	}
	s, err := cf.open(ctx, io)
	if err != nil {
		return err
	}
	defer s.close()
	sub, _, err := subscribers.NewStore(s.topo.Subscribers, subscribers.Rules{}).Get(ctx, fs.Arg(0))
	if errors.Is(err, subscribers.ErrNotFound) {
		return usagef("no subscriber %q", fs.Arg(0))
	}
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(sub.Redacted(), "", "  ")
	fmt.Fprintln(io.out, string(b))
	return nil
}

func subscribersRemove(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("subscribers rm", "subscribers rm [flags] ID...", io)
	var cf connFlags
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("expected at least one subscriber ID")
	}
	s, err := cf.open(ctx, io)
	if err != nil {
		return err
	}
	defer s.close()
	store := subscribers.NewStore(s.topo.Subscribers, subscribers.Rules{})
	dlq, err := dispatcher.NewDeadLetters(ctx, s.b.JS)
	if err != nil {
		return err
	}
	missing := 0
	for _, id := range fs.Args() {
		_, err := dispatcher.EraseSubscriber(ctx, store, dlq, id)
		switch {
		case errors.Is(err, subscribers.ErrNotFound), errors.Is(err, jetstream.ErrInvalidKey):
			missing++
			fmt.Fprintf(io.err, "%s: no such subscriber\n", id)
		case err != nil:
			return err
		default:
			fmt.Fprintf(io.out, "%s: removed\n", id)
		}
	}
	if missing > 0 {
		return usagef("%d subscribers not found", missing)
	}
	return nil
}
