package portal

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// option is one choice of a select or a checkbox list.
type option struct {
	Value, Label string
	Selected     bool
}

// prefsForm is the preference part of the subscribe and manage forms.
type prefsForm struct {
	Locales, Timezones, Priorities, Components, Statuses []option
	QuietStart, QuietEnd                                 string
}

// prefsArgs is what the "prefs" template reads.
type prefsArgs struct {
	Page *page
	Form prefsForm
}

// prefs are the preferences a form gives.
type prefs struct {
	Locale, Timezone     string
	Components           []string
	MinPriority          incident.Priority
	Statuses             []incident.Status
	QuietStart, QuietEnd string
}

// prefsForm builds the form of p, in the page's language; withStatuses
// adds the statuses (the manage page).
func (s *Server) prefsForm(pg *page, p prefs, withStatuses bool) prefsArgs {
	f := prefsForm{QuietStart: p.QuietStart, QuietEnd: p.QuietEnd}
	loc := matchLocale(p.Locale)
	for _, l := range Locales {
		f.Locales = append(f.Locales, option{l, langNames[l], l == loc})
	}
	tz := p.Timezone
	if tz == "" {
		tz = s.cfg.Timezones[0]
	}
	for _, z := range s.cfg.Timezones {
		f.Timezones = append(f.Timezones, option{z, strings.ReplaceAll(z, "_", " "), z == tz})
	}
	if !slices.Contains(s.cfg.Timezones, tz) {
		f.Timezones = append(f.Timezones, option{tz, tz, true})
	}
	for _, pr := range []string{"", "P1", "P2", "P3"} {
		key := "priority." + pr
		if pr == "" {
			key = "priority.all"
		}
		f.Priorities = append(f.Priorities, option{pr, pg.T(key), string(p.MinPriority) == pr})
	}
	for _, id := range s.catalog.IDs() {
		f.Components = append(f.Components, option{id, s.catalog.Name(id, pg.Lang), slices.Contains(p.Components, id)})
	}
	if withStatuses {
		for _, st := range incident.Statuses() {
			f.Statuses = append(f.Statuses, option{string(st), pg.T("status." + string(st)), slices.Contains(p.Statuses, st)})
		}
	}
	return prefsArgs{Page: pg, Form: f}
}

// readPrefs reads the preferences of a posted form; the subscriber's
// validation checks them when they are stored.
func readPrefs(r *http.Request) prefs {
	p := prefs{
		Locale: strings.TrimSpace(r.PostFormValue("locale")), Timezone: strings.TrimSpace(r.PostFormValue("timezone")),
		MinPriority: incident.Priority(r.PostFormValue("min_priority")),
		QuietStart:  strings.TrimSpace(r.PostFormValue("quiet_start")), QuietEnd: strings.TrimSpace(r.PostFormValue("quiet_end")),
	}
	p.Components = r.PostForm["components"]
	for _, st := range r.PostForm["statuses"] {
		p.Statuses = append(p.Statuses, incident.Status(st))
	}
	if !slices.Contains(Locales, p.Locale) {
		p.Locale = ""
	}
	return p
}

// quiet returns the quiet hours the form gives, or nil.
func (p prefs) quiet() *subscribers.QuietHours {
	if p.QuietStart == "" || p.QuietEnd == "" || p.QuietStart == p.QuietEnd {
		return nil
	}
	return &subscribers.QuietHours{Start: p.QuietStart, End: p.QuietEnd}
}

// apply sets p on s: the subscriber's filters, and the quiet hours on its
// SMS endpoints.
func (p prefs) apply(s *subscribers.Subscriber) {
	if p.Locale != "" {
		s.Locale = p.Locale
	}
	s.Timezone = p.Timezone
	s.Components = p.Components
	s.MinPriority = p.MinPriority
	s.Statuses = p.Statuses
	for i := range s.Endpoints {
		if s.Endpoints[i].Channel == "sms" {
			s.Endpoints[i].QuietHours = p.quiet()
		}
	}
}

// prefsOf returns the preferences of s.
func prefsOf(s *subscribers.Subscriber) prefs {
	p := prefs{Locale: s.Locale, Timezone: s.Timezone, Components: s.Components, MinPriority: s.MinPriority, Statuses: s.Statuses}
	for _, ep := range s.Endpoints {
		if ep.Channel == "sms" && ep.QuietHours != nil {
			p.QuietStart, p.QuietEnd = ep.QuietHours.Start, ep.QuietHours.End
			break
		}
	}
	return p
}

// fieldMessages turns validation problems into messages in the page's
// language: the known fields get a sentence of their own, the others the
// validation's (English) message after the field.
func fieldMessages(pg *page, err error) []string {
	var fe subscribers.FieldErrors
	if !errors.As(err, &fe) {
		return nil
	}
	var out []string
	for _, f := range fe {
		var msg string
		switch {
		case strings.HasSuffix(f.Field, ".address") && strings.Contains(f.Message, "email"):
			msg = pg.T("error.email")
		case strings.HasSuffix(f.Field, ".url") || strings.HasSuffix(f.Field, ".webhook_url"):
			msg = pg.T("error.url", "reason", f.Message)
		default:
			msg = pg.T("error.field", "field", f.Field, "message", f.Message)
		}
		if !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// phoneError is the message of a phone number refused before it is
// stored.
func phoneError(pg *page, err error) string {
	switch {
	case errors.Is(err, subscribers.ErrCountry):
		return pg.T("error.country")
	case errors.Is(err, subscribers.ErrNotMobile):
		return pg.T("error.not_mobile")
	}
	return pg.T("error.phone")
}
