package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/dispatcher"
)

func cmdSuppressions(ctx context.Context, args []string, io *stdio) error {
	usage := "suppressions list|rm [flags]"
	if len(args) == 0 {
		return usagef("usage: herald %s", usage)
	}
	fs := newFlagSet("suppressions "+args[0], usage, io)
	var cf connFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON lines")
	if args[0] != "list" && args[0] != "rm" {
		return usagef("unknown subcommand %q; usage: herald %s", args[0], usage)
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if args[0] == "rm" && fs.NArg() == 0 {
		return usagef("expected at least one ADDRESS")
	}
	s, err := cf.open(ctx, io)
	if err != nil {
		return err
	}
	defer s.close()
	supp, err := dispatcher.NewSuppressions(ctx, s.b.JS, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if args[0] == "list" {
		items, err := supp.List(ctx)
		if err != nil {
			return err
		}
		return printItems(io.out, *asJSON, items, []string{"CHANNEL", "ADDRESS", "SINCE", "REASON"}, func(it dispatcher.Suppression) []string {
			return []string{it.Channel, it.Address, it.At.Local().Format(time.DateTime), it.Reason}
		})
	}
	missing := 0
	for _, addr := range fs.Args() {
		n, err := supp.Remove(ctx, addr)
		if err != nil {
			return err
		}
		if n == 0 {
			missing++
			fmt.Fprintf(io.err, "%s: not suppressed\n", addr)
			continue
		}
		fmt.Fprintf(io.out, "%s: suppression lifted\n", addr)
	}
	if missing > 0 {
		return usagef("%d addresses were not suppressed", missing)
	}
	return nil
}
