package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/dispatcher"
)

func cmdDLQ(ctx context.Context, args []string, io *stdio) error {
	usage := "dlq list|replay [flags]"
	if len(args) == 0 {
		return usagef("usage: herald %s", usage)
	}
	switch args[0] {
	case "list":
		return dlqList(ctx, args[1:], io)
	case "replay":
		return dlqReplay(ctx, args[1:], io)
	}
	return usagef("unknown subcommand %q; usage: herald %s", args[0], usage)
}

func openDeadLetters(ctx context.Context, cf *connFlags, io *stdio) (*session, *dispatcher.DeadLetters, error) {
	s, err := cf.open(ctx, io)
	if err != nil {
		return nil, nil, err
	}
	dl, err := dispatcher.NewDeadLetters(ctx, s.b.JS)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, dl, nil
}

func dlqList(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("dlq list", "dlq list [flags]", io)
	var cf connFlags
	cf.register(fs)
	after := fs.Uint64("after", 0, "list entries after this dead-letter `seq`")
	limit := fs.Int("limit", 100, "at most `n` entries")
	asJSON := fs.Bool("json", false, "print JSON lines, original message included")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, dl, err := openDeadLetters(ctx, &cf, io)
	if err != nil {
		return err
	}
	defer s.close()
	items, err := dl.List(ctx, *after, *limit)
	if err != nil {
		return err
	}
	return printItems(io.out, *asJSON, items, []string{"SEQ", "FAILED AT", "SUBJECT", "REF", "ATTEMPTS", "REASON"}, func(it dispatcher.DeadLetter) []string {
		reason := it.Reason
		if len(reason) > 100 {
			reason = reason[:100] + "…"
		}
		return []string{fmt.Sprint(it.Seq), it.FailedAt.Local().Format(time.DateTime), it.Subject, it.Ref, fmt.Sprint(it.Attempts), reason}
	})
}

func dlqReplay(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("dlq replay", "dlq replay [flags] (--id ID | --seq N | --all)", io)
	var cf connFlags
	cf.register(fs)
	id := fs.String("id", "", "replay the entries of this delivery or event `id`")
	seq := fs.Uint64("seq", 0, "replay the entry with this dead-letter `seq`")
	all := fs.Bool("all", false, "replay every entry")
	if err := parse(fs, args); err != nil {
		return err
	}
	chosen := 0
	for _, b := range []bool{*id != "", *seq != 0, *all} {
		if b {
			chosen++
		}
	}
	if chosen != 1 {
		return usagef("choose exactly one of --id, --seq and --all")
	}
	s, dl, err := openDeadLetters(ctx, &cf, io)
	if err != nil {
		return err
	}
	defer s.close()
	switch {
	case *all:
		n, err := dl.ReplayAll(ctx)
		fmt.Fprintf(io.out, "replayed %d entries\n", n)
		return err
	case *seq != 0:
		if err := dl.Replay(ctx, *seq); err != nil {
			return err
		}
		fmt.Fprintf(io.out, "replayed entry %d\n", *seq)
		return nil
	}
	found, err := dl.Find(ctx, strings.TrimSpace(*id))
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return usagef("no dead letter with id %q", *id)
	}
	for _, it := range found {
		if err := dl.Replay(ctx, it.Seq); err != nil {
			return err
		}
		fmt.Fprintf(io.out, "replayed entry %d (%s)\n", it.Seq, it.Ref)
	}
	return nil
}
