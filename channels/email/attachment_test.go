package email

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"

	"github.com/heraldhq/herald/channels"
)

// calendarMessage is a maintenance notification with its .ics.
func calendarMessage() *channels.Message {
	msg := frenchMessage()
	msg.Attachments = []channels.Attachment{{
		Filename: "maintenance.ics", ContentType: "text/calendar; charset=UTF-8; method=PUBLISH",
		Data: []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\nUID:MNT-7@herald.example\r\nSEQUENCE:2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
	}}
	return msg
}

// TestComposeAttachment: the .ics goes as a text/calendar attachment
// (method kept) beside the text and HTML alternatives, and the message
// renders to the same bytes every time.
func TestComposeAttachment(t *testing.T) {
	t.Parallel()
	r := testRenderer(t, nil)
	msg := calendarMessage()
	data, err := r.Render(dupont(), msg, testDate)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Render(dupont(), msg, testDate)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatal("two renderings of a message with an attachment differ")
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("top level %s %v", mt, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var ics []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, cp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		switch ct {
		case "multipart/alternative":
			ar := multipart.NewReader(p, cp["boundary"])
			for {
				ap, err := ar.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				at, _, _ := mime.ParseMediaType(ap.Header.Get("Content-Type"))
				types = append(types, at)
			}
		case "text/calendar":
			if cp["method"] != "PUBLISH" || cp["charset"] != "UTF-8" || !strings.Contains(p.Header.Get("Content-Disposition"), `filename="maintenance.ics"`) ||
				p.Header.Get("Content-Transfer-Encoding") != "base64" {
				t.Fatalf("calendar part headers %v", p.Header)
			}
			raw, _ := io.ReadAll(p)
			if ics, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(raw))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Join(types, ",") != "multipart/alternative,text/plain,text/html,text/calendar" {
		t.Fatalf("parts %v", types)
	}
	if !bytes.Equal(ics, msg.Attachments[0].Data) {
		t.Fatalf("the attachment came out as %q", ics)
	}
	if bytes.Contains(data, []byte("boundary=herald-")) == false {
		t.Error("the boundaries are not derived from the delivery id")
	}
}

// TestComposeRefusesBadAttachments: names and media types that would
// break the MIME headers, and oversized data.
func TestComposeRefusesBadAttachments(t *testing.T) {
	t.Parallel()
	r := testRenderer(t, nil)
	for _, a := range []channels.Attachment{
		{Filename: "", ContentType: "text/calendar", Data: []byte("x")},
		{Filename: `a"b.ics`, ContentType: "text/calendar", Data: []byte("x")},
		{Filename: "../x.ics", ContentType: "text/calendar", Data: []byte("x")},
		{Filename: "a\r\nBcc: x@y.example", ContentType: "text/calendar", Data: []byte("x")},
		{Filename: "a.ics", ContentType: "text/calendar;;", Data: []byte("x")},
		{Filename: "a.ics", ContentType: "text/calendar\r\nX: y", Data: []byte("x")},
		{Filename: "a.ics", ContentType: "text/calendar", Data: make([]byte, maxAttachmentBytes+1)},
	} {
		msg := frenchMessage()
		msg.Attachments = []channels.Attachment{a}
		if _, err := r.Render(dupont(), msg, testDate); err == nil {
			t.Errorf("attachment %q (%q) accepted", a.Filename, a.ContentType)
		}
	}
}
