package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
)

func cmdLedger(ctx context.Context, args []string, io *stdio) error {
	usage := "ledger export [flags]"
	if len(args) == 0 {
		return usagef("usage: herald %s", usage)
	}
	switch args[0] {
	case "export":
		return ledgerExport(ctx, args[1:], io)
	}
	return usagef("unknown subcommand %q; usage: herald %s", args[0], usage)
}

// ledgerExport streams the ledger, one row per notification, to stdout or
// a file.
func ledgerExport(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("ledger export", "ledger export [--incident ID] [--subscriber ID] [--event ID] [--since T] [--until T] [--format csv|jsonl] [--out FILE]", io)
	var cf connFlags
	cf.register(fs)
	var f dispatcher.LedgerFilter
	fs.StringVar(&f.IncidentID, "incident", "", "only the notifications of this incident `id` (read by its own subjects)")
	fs.StringVar(&f.SubscriberID, "subscriber", "", "only the notifications of this subscriber `id`")
	fs.StringVar(&f.EventID, "event", "", "only the notifications of this update (event `id`)")
	since := fs.String("since", "", "only notifications first handled at or after `T` (RFC 3339, or YYYY-MM-DD in UTC)")
	until := fs.String("until", "", "only notifications first handled before `T` (RFC 3339, or YYYY-MM-DD in UTC)")
	formatName := fs.String("format", "", "csv or jsonl (default: from the --out file's extension, else jsonl)")
	out := fs.String("out", "", "write to this `file` (written whole or not at all) instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	var err error
	for _, b := range []struct {
		v   string
		dst *time.Time
	}{{*since, &f.Since}, {*until, &f.Until}} {
		if b.v == "" {
			continue
		}
		if *b.dst, err = dispatcher.ParseLedgerTime(b.v); err != nil {
			return &usageError{err}
		}
	}
	name := *formatName
	if name == "" {
		name = "jsonl"
		if filepath.Ext(*out) == ".csv" {
			name = "csv"
		}
	}
	format, err := dispatcher.ParseLedgerFormat(name)
	if err != nil {
		return &usageError{err}
	}
	s, err := cf.open(ctx, io)
	if err != nil {
		return err
	}
	defer s.close()

	w, finish, err := exportTarget(*out, io.out)
	if err != nil {
		return err
	}
	enc, err := dispatcher.NewLedgerEncoder(w, format)
	if err != nil {
		return err
	}
	n, err := dispatcher.NewLedger(s.topo).Export(ctx, f, enc.Encode)
	if err == nil {
		err = enc.Header()
	}
	if err == nil {
		err = enc.Flush()
	}
	if err = finish(err); err != nil {
		var fe incident.FieldErrors
		if errors.As(err, &fe) {
			return &usageError{err}
		}
		return err
	}
	fmt.Fprintf(io.err, "%d notifications exported\n", n)
	return nil
}

// exportTarget returns where an export writes: stdout, or a temporary file
// beside path that finish renames into place once the export succeeded
// (and removes otherwise), so that a failed export leaves no short file.
func exportTarget(path string, stdout io.Writer) (io.Writer, func(error) error, error) {
	if path == "" {
		return stdout, func(err error) error { return err }, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, &usageError{err}
	}
	return tmp, func(err error) error {
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
		return err
	}, nil
}
