package dispatcher

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// LedgerFormat is the encoding of a ledger export.
type LedgerFormat string

// Ledger formats.
const (
	// LedgerCSV is RFC 4180 CSV with a header row ([LedgerColumns]).
	LedgerCSV LedgerFormat = "csv"
	// LedgerJSONL is one JSON object ([LedgerRow]) per line.
	LedgerJSONL LedgerFormat = "jsonl"
)

// ParseLedgerFormat returns the format named s ("csv", "jsonl").
func ParseLedgerFormat(s string) (LedgerFormat, error) {
	switch f := LedgerFormat(s); f {
	case LedgerCSV, LedgerJSONL:
		return f, nil
	}
	return "", fmt.Errorf("format %q: must be csv or jsonl", s)
}

// ContentType is the media type of the format.
func (f LedgerFormat) ContentType() string {
	if f == LedgerCSV {
		return "text/csv; charset=utf-8"
	}
	return "application/jsonl; charset=utf-8"
}

// LedgerColumns are the CSV columns, in order: the JSON names of
// [LedgerRow]'s fields.
var LedgerColumns = []string{
	"delivery_id", "kind", "incident_id", "event_id", "sequence", "subscriber_id", "endpoint_id", "channel",
	"requested_locale", "locale", "locale_fallback", "body_sha256", "first_attempt_at",
	"outcome", "outcome_at", "final", "attempts", "status", "reason", "action", "provider_id",
	"receipt", "receipt_at", "records",
}

// LedgerEncoder writes ledger rows in one format, buffered: call Flush at
// the end.
type LedgerEncoder struct {
	format LedgerFormat
	buf    *bufio.Writer
	csv    *csv.Writer
	json   *json.Encoder
	header bool
	fields []string
}

// NewLedgerEncoder returns an encoder writing to w.
func NewLedgerEncoder(w io.Writer, format LedgerFormat) (*LedgerEncoder, error) {
	if _, err := ParseLedgerFormat(string(format)); err != nil {
		return nil, err
	}
	e := &LedgerEncoder{format: format, buf: bufio.NewWriterSize(w, 64<<10)}
	if format == LedgerCSV {
		e.csv = csv.NewWriter(e.buf)
		e.fields = make([]string, len(LedgerColumns))
	} else {
		e.json = json.NewEncoder(e.buf)
		e.json.SetEscapeHTML(false)
	}
	return e, nil
}

// Header writes the CSV header row (once; nothing for JSONL). Encode
// writes it before the first row; an export with no row calls it alone.
func (e *LedgerEncoder) Header() error {
	if e.csv == nil || e.header {
		return nil
	}
	e.header = true
	return e.csv.Write(LedgerColumns)
}

// Encode writes one row.
func (e *LedgerEncoder) Encode(r *LedgerRow) error {
	if e.json != nil {
		return e.json.Encode(r)
	}
	if err := e.Header(); err != nil {
		return err
	}
	f := e.fields[:0]
	f = append(f, r.DeliveryID, r.Kind, r.IncidentID, r.EventID, optInt(r.Sequence), r.SubscriberID, r.EndpointID, r.Channel,
		r.RequestedLocale, r.Locale, strconv.FormatBool(r.LocaleFallback), r.BodySHA256, csvTime(r.FirstAttemptAt),
		string(r.Outcome), csvTime(r.OutcomeAt), strconv.FormatBool(r.Final), strconv.Itoa(r.Attempts), optInt(int64(r.Status)),
		csvText(r.Reason), r.Action, csvText(r.ProviderID), r.Receipt, "", strconv.Itoa(r.Records))
	if r.ReceiptAt != nil {
		f[22] = csvTime(*r.ReceiptAt)
	}
	return e.csv.Write(f)
}

// Flush writes out what is buffered.
func (e *LedgerEncoder) Flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	return e.buf.Flush()
}

func optInt(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// csvText guards free text (a provider's words) against spreadsheets that
// take a cell starting with =, +, -, @, a tab or a carriage return for a
// formula: such a cell is prefixed with a single quote.
func csvText(s string) string {
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}

// ParseLedgerTime reads a bound of a ledger export: an RFC 3339 time, or a
// date (YYYY-MM-DD, midnight UTC).
func ParseLedgerTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q must be an RFC 3339 time or a date (YYYY-MM-DD)", s)
}
