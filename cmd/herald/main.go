package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, env: os.Getenv})
	stop()
	os.Exit(code)
}

// stdio is what a command may touch of the process.
type stdio struct {
	in  io.Reader
	out io.Writer
	err io.Writer
	env func(string) string
}

// usageError marks bad usage or bad input: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io *stdio) error
}

func commands() []command {
	return []command{
		{"serve", "run the dispatcher and the HTTP API", cmdServe},
		{"publish", "publish incident updates from a JSON or JSONL file (- for stdin)", cmdPublish},
		{"subscribers", "import, list, get or remove subscribers", cmdSubscribers},
		{"dlq", "list or replay dead letters", cmdDLQ},
		{"ledger", "export the ledger: one row per notification (CSV or JSON lines)", cmdLedger},
		{"recall", "cancel the notifications of an update not yet sent; list those sent", cmdRecall},
		{"suppressions", "list or lift suppressed addresses", cmdSuppressions},
		{"preview", "render an update as a subscriber would receive it", cmdPreview},
		{"version", "print the version Herald was built from", cmdVersion},
		{"ingest", "test the conversion of a saved status-page payload or feed", cmdIngest},
	}
}

func run(ctx context.Context, args []string, io *stdio) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(io.err)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], io)
		var ue *usageError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintln(io.err, "herald "+c.name+": "+err.Error())
			return exitUsage
		default:
			fmt.Fprintln(io.err, "herald "+c.name+": "+err.Error())
			return exitFailure
		}
	}
	fmt.Fprintf(io.err, "herald: unknown command %q\n\n", args[0])
	printUsage(io.err)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Herald dispatches incident notifications by email, SMS, Slack and signed webhooks.")
	fmt.Fprintln(w, "\nUsage: herald COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'herald COMMAND --help' for a command's flags.")
}

// newFlagSet builds a command's flag set; parse errors are usage errors.
func newFlagSet(name, usage string, io *stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {
		fmt.Fprintf(io.err, "Usage: herald %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	return nil
}
