package templates

import (
	"fmt"
	"net/mail"
	"strings"

	ics "github.com/arran4/golang-ical"
)

// Attachment is a file an email carries.
type Attachment struct {
	// Filename is the name the recipient sees ("maintenance.ics").
	Filename string
	// ContentType is the media type with its parameters.
	ContentType string
	// Data is the content. Shared with the renderer's cache: read-only.
	Data []byte
}

// CalendarFilename is the name of the iCalendar attachment.
const CalendarFilename = "maintenance.ics"

// calendar returns the iCalendar (RFC 5545) attachment of a maintenance
// update, written in the view's language: one VEVENT spanning the
// window, whose UID is the same for every update of the maintenance
// ("<incident id>@<calendar domain>") and whose SEQUENCE is the update's
// sequence, so that a calendar that has the event moves it when the
// window moves (RFC 5546: a higher SEQUENCE supersedes). A cancelled
// maintenance is METHOD:CANCEL with STATUS:CANCELLED; any other update
// METHOD:PUBLISH. Nil for an update that is not about a maintenance.
func (r *Renderer) calendar(p *prepared, v *view) (*Attachment, error) {
	ev := p.ev
	if ev.ScheduledFor == nil || ev.ScheduledUntil == nil {
		return nil, nil
	}
	method, status := ics.MethodPublish, ics.ObjectStatusConfirmed
	if ev.Cancelled {
		method, status = ics.MethodCancel, ics.ObjectStatusCancelled
	}
	cal := ics.NewCalendarFor("Herald")
	cal.SetProductId("-//Herald//Maintenance notifications//" + strings.ToUpper(v.Lang))
	cal.SetMethod(method)
	e := cal.AddEvent(ev.IncidentID + "@" + r.cfg.CalendarDomain)
	e.SetSequence(int(ev.Sequence))
	e.SetDtStampTime(p.published)
	e.SetStartAt(*ev.ScheduledFor)
	e.SetEndAt(*ev.ScheduledUntil)
	e.SetSummary(v.Title)
	// A reminder's wording ("begins in 1 hour") would soon be wrong in a
	// calendar: the event keeps the status's summary.
	desc := v.baseSummary
	if !v.Reminder {
		desc = v.Summary
	}
	if body := strings.TrimSpace(v.Body); body != "" {
		desc += "\n\n" + body
	}
	if v.URL != "" {
		desc += "\n\n" + v.URL
		e.SetURL(v.URL)
	}
	e.SetDescription(desc)
	e.SetStatus(status)
	e.SetProperty(ics.ComponentPropertyTransp, "TRANSPARENT") // a maintenance does not make anyone busy
	if r.cfg.CalendarOrganizer != "" {
		a, err := mail.ParseAddress(r.cfg.CalendarOrganizer)
		if err != nil {
			return nil, fmt.Errorf("calendar organizer: %w", err)
		}
		var params []ics.PropertyParameter
		if a.Name != "" {
			params = append(params, ics.WithCN(a.Name))
		}
		e.SetOrganizer("mailto:"+a.Address, params...)
	}
	return &Attachment{
		Filename:    CalendarFilename,
		ContentType: "text/calendar; charset=UTF-8; method=" + string(method),
		Data:        []byte(cal.Serialize(ics.WithNewLine("\r\n"))),
	}, nil
}
