package incident

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// utf8BOM is the byte order mark some editors write at the start of UTF-8
// files; JSON parsers may ignore it (RFC 8259, section 8.1).
var utf8BOM = []byte("\ufeff")

// TrimBOM returns data without a leading UTF-8 byte order mark.
func TrimBOM(data []byte) []byte { return bytes.TrimPrefix(data, utf8BOM) }

// ErrTrailingData is [DecodeStrict]'s error for data after the JSON value.
var ErrTrailingData = errors.New("unexpected data after the JSON object")

// DecodeStrict decodes the one JSON value of data into v, strictly: a
// leading byte order mark is skipped; unknown fields, data after the value
// ([ErrTrailingData]), keys that differ from a field's name by case and
// repeated keys ([CheckKeys]'s [FieldErrors]) are refused. Any other error
// is encoding/json's, for the caller to word.
func DecodeStrict(data []byte, v any) error {
	data = TrimBOM(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return CheckKeys(data, v)
}

// CheckKeys checks the object keys of the JSON document data against the
// type v points to, where encoding/json is lenient: a key must equal a
// field's JSON name exactly (encoding/json also takes "ID" for "id"), and
// no object, at any depth, may repeat a key (encoding/json keeps the last
// value, so a second "id" would rename the document). Unknown keys are
// left to the decoder's DisallowUnknownFields; a key that differs from a
// field's name only by case is reported, with the name. Syntax errors are
// left to the decoder too.
//
// The problems are returned as [FieldErrors] naming each key's path.
func CheckKeys(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var fe FieldErrors
	if err := walkKeys(dec, reflect.TypeOf(v), "", &fe); err != nil && !errors.Is(err, io.EOF) {
		return nil // a syntax error: the decoder reports it
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkKeys reads one value from dec, checking its keys against t (nil:
// any value, only repeated keys are checked).
func walkKeys(dec *json.Decoder, t reflect.Type, path string, fe *FieldErrors) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		t = nil // decodes itself: any shape
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, elem, fmt.Sprintf("%s[%d]", path, i), fe); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t != nil && t.Kind() == reflect.Struct:
			fields = jsonFields(t)
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			field := key
			if path != "" {
				field = path + "." + key
			}
			if seen[key] {
				fe.Addf(field, "duplicate key")
			}
			seen[key] = true
			vt := elem
			if fields != nil {
				ft, exact := fields[key]
				if !exact {
					for name := range fields {
						if strings.EqualFold(name, key) {
							fe.Addf(field, "unknown field (keys are case-sensitive: %q)", name)
							break
						}
					}
				}
				vt = ft
			}
			if err := walkKeys(dec, vt, field, fe); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonFields returns the JSON names of a struct's fields, embedded
// structs' included, with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, taken := out[k]; !taken {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
