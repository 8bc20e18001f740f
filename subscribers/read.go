package subscribers

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
)

// Format is an import file format.
type Format int

const (
	// JSONL is one subscriber JSON object per line (blank lines and lines
	// starting with '#' are skipped).
	JSONL Format = iota
	// CSV is one endpoint per row under a header row (see [CSVColumns]);
	// consecutive rows with the same id form one subscriber.
	CSV
)

// String returns "jsonl" or "csv".
func (f Format) String() string {
	if f == CSV {
		return "csv"
	}
	return "jsonl"
}

// MaxLineBytes bounds one JSONL line or CSV row.
const MaxLineBytes = 1 << 20

// CSVColumns are the columns a CSV import may have, in any order; id,
// locale and channel are required. List cells (components, statuses)
// separate values with ';' or '|'. quiet_hours is "22:00-07:00".
var CSVColumns = []string{
	"id", "name", "locale", "timezone", "components", "min_priority", "statuses",
	"endpoint_id", "channel", "address", "url", "secret", "webhook_url", "slack_channel",
	"endpoint_components", "endpoint_min_priority", "endpoint_statuses", "quiet_hours",
}

// DetectFormat picks the format from the file name's extension, else from
// the first bytes of its content.
func DetectFormat(name string, head []byte) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".jsonl", ".ndjson", ".json":
		return JSONL
	}
	if t := bytes.TrimLeft(head, " \t\r\n\ufeff"); len(t) > 0 && (t[0] == '{' || t[0] == '#') {
		return JSONL
	}
	return CSV
}

// Record is one subscriber read from a file, or the problem with its line.
type Record struct {
	// Line is the 1-based line the subscriber starts on.
	Line int
	// Subscriber is set when the line parsed (it is not validated yet:
	// see [Rules.Normalize]).
	Subscriber *Subscriber
	// Err is the parse problem of the line; the reading goes on.
	Err error

	id string // CSV: the id of a rejected subscriber, to skip its other rows
}

func (r *Record) lastID() string {
	if r.Subscriber != nil {
		return r.Subscriber.ID
	}
	return r.id
}

// Read reads subscribers from r in format f and calls fn for each record,
// including the lines that do not parse (with Err set): one bad line never
// stops an import. Read stops at the end of the input, at an I/O error, at a
// CSV header problem, or when fn returns an error, which Read returns.
func Read(r io.Reader, f Format, fn func(Record) error) error {
	if f == CSV {
		return readCSV(r, fn)
	}
	return readJSONL(r, fn)
}

func readJSONL(r io.Reader, fn func(Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line := 0
	for {
		data, err := readLine(br)
		if len(data) > 0 || err == nil || errors.Is(err, errLineTooLong) {
			line++
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errLineTooLong) {
			return err
		}
		if errors.Is(err, errLineTooLong) {
			if ferr := fn(Record{Line: line, Err: fmt.Errorf("line longer than %d bytes", MaxLineBytes)}); ferr != nil {
				return ferr
			}
			continue
		}
		t := bytes.TrimSpace(data)
		if line == 1 {
			t = bytes.TrimPrefix(t, []byte("\ufeff"))
		}
		if len(t) > 0 && t[0] != '#' {
			rec := Record{Line: line}
			rec.Subscriber, rec.Err = ParseJSON(t)
			if ferr := fn(rec); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its end of line. A line longer
// than MaxLineBytes is skipped and reported as errLineTooLong.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			buf = buf[:len(buf)-1]
		}
		return bytes.TrimSuffix(buf, []byte("\r")), err
	}
}

// ParseJSON decodes one subscriber object strictly: unknown fields, keys
// that differ from the field names by case, repeated keys and trailing
// data are errors; a leading UTF-8 byte order mark is skipped. It does not validate (see [Rules.Normalize]).
func ParseJSON(data []byte) (*Subscriber, error) {
	var st stored
	var fe incident.FieldErrors
	switch err := incident.DecodeStrict(data, &st); {
	case errors.Is(err, incident.ErrTrailingData), errors.As(err, &fe):
		return nil, err
	case err != nil:
		return nil, jsonError(err)
	}
	s := st.Subscriber
	s.Endpoints = make([]Endpoint, len(st.Endpoints))
	for i, ep := range st.Endpoints {
		s.Endpoints[i] = ep.Endpoint
		s.Endpoints[i].Secret = secret.Value(ep.Secret)
		s.Endpoints[i].WebhookURL = secret.Value(ep.WebhookURL)
	}
	return &s, nil
}

// jsonError rewords encoding/json errors without echoing values (a secret
// may be the bad value).
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(subscriber)"
		}
		return FieldErrors{{Field: field, Message: "must be a JSON " + jsonKind(te.Type.Kind().String())}}
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return FieldErrors{{Field: strings.Trim(f, `"`), Message: "unknown field"}}
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
}

func jsonKind(k string) string {
	switch k {
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	}
	return "number"
}

func readCSV(r io.Reader, fn func(Record) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("csv header: %w", err)
	}
	cols := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(CSVColumns, h) {
			return fmt.Errorf("csv header: unknown column %q (known: %s)", h, strings.Join(CSVColumns, ", "))
		}
		if _, dup := cols[h]; dup {
			return fmt.Errorf("csv header: column %q appears twice", h)
		}
		cols[h] = i
	}
	for _, need := range []string{"id", "locale", "channel"} {
		if _, ok := cols[need]; !ok {
			return fmt.Errorf("csv header: column %q is required", need)
		}
	}
	var cur *Record
	flush := func() error {
		if cur == nil {
			return nil
		}
		rec := *cur
		cur = nil
		return fn(rec)
	}
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return err
			}
			if ferr := flush(); ferr != nil {
				return ferr
			}
			if ferr := fn(Record{Line: pe.StartLine, Err: fmt.Errorf("csv: %v", pe.Err)}); ferr != nil {
				return ferr
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(row) {
				return strings.TrimSpace(row[i])
			}
			return ""
		}
		id := get("id")
		if cur != nil && cur.Err == nil && cur.Subscriber.ID == id && id != "" {
			ep, err := csvEndpoint(get, len(cur.Subscriber.Endpoints))
			if err != nil {
				cur.Err = fmt.Errorf("line %d: %w", line, err)
				cur.Subscriber, cur.id = nil, id
			} else {
				cur.Subscriber.Endpoints = append(cur.Subscriber.Endpoints, ep)
			}
			continue
		}
		if cur != nil && cur.Err != nil && id != "" && id == cur.lastID() {
			continue // more rows of a subscriber already rejected
		}
		if ferr := flush(); ferr != nil {
			return ferr
		}
		s := &Subscriber{
			ID: id, Name: get("name"), Locale: get("locale"), Timezone: get("timezone"),
			Components: list(get("components")), MinPriority: incident.Priority(get("min_priority")),
			Statuses: statuses(get("statuses")),
		}
		rec := &Record{Line: line, Subscriber: s}
		ep, err := csvEndpoint(get, 0)
		if err != nil {
			rec.Err, rec.Subscriber = err, nil
			rec.id = id
		} else {
			s.Endpoints = []Endpoint{ep}
		}
		cur = rec
	}
}

func csvEndpoint(get func(string) string, n int) (Endpoint, error) {
	ep := Endpoint{
		ID: get("endpoint_id"), Channel: get("channel"), Address: get("address"), URL: get("url"),
		Secret: secret.Value(get("secret")), WebhookURL: secret.Value(get("webhook_url")),
		SlackChannel: get("slack_channel"), Components: list(get("endpoint_components")),
		MinPriority: incident.Priority(get("endpoint_min_priority")), Statuses: statuses(get("endpoint_statuses")),
	}
	if ep.ID == "" {
		ep.ID = fmt.Sprintf("e%d", n+1)
	}
	if q := get("quiet_hours"); q != "" {
		start, end, ok := strings.Cut(q, "-")
		if !ok {
			return ep, FieldErrors{{Field: "quiet_hours", Message: `must be "HH:MM-HH:MM"`}}
		}
		ep.QuietHours = &QuietHours{Start: strings.TrimSpace(start), End: strings.TrimSpace(end)}
	}
	return ep, nil
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '|' })
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func statuses(s string) []incident.Status {
	var out []incident.Status
	for _, v := range list(s) {
		out = append(out, incident.Status(v))
	}
	return out
}
