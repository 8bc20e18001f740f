package templates

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
)

// TestSplitRendering checks how split titles, bodies and headers reach
// the messages: each language its own title and body, a title that no
// language can be told of sent whole, a title in other languages replaced
// by the catalog's, header values given in some languages shown in the
// fallback language elsewhere, and the header in the webhook payload.
func TestSplitRendering(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)
	r := newTestRenderer(t, testConfig())
	render := func(id, locale, channel string) *Rendered {
		t.Helper()
		out, err := r.Render(Update{Event: corpusEvent(t, events, id), AcceptedAt: acceptedAt}, channel, testRecipient(t, locale))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		id, locale      string
		lang            string
		fallback        bool
		subject         string // contained
		notInSubject    string
		text, notInText []string
	}{
		{id: "TSR-1723:1", locale: "it", lang: "it", subject: "INCIDENT PROCESSING | Perturbazioni pagamenti Oney",
			text:      []string{"Siamo stati informati", "Responsabilità: Esterna", "Riferimento: TSR-1723", "Fine: In corso"},
			notInText: []string{"Nous avons", "We have been", "Début / Start", "FR ", "EN "}},
		{id: "TSR-1723:1", locale: "en-GB", lang: "en", subject: "INCIDENT PROCESSING | Oney payment disruptions",
			text: []string{"We have been informed", "Responsibility: External", "Started: May 3, 2025"}, notInText: []string{"Siamo", "Nous"}},
		// No Italian text: French readers' language comes first in the
		// fallback chain after English.
		{id: "TSR-1177:1", locale: "it-CH", lang: "en", fallback: true, subject: "Payment platform disruptions",
			text: []string{"We have identified ongoing difficulties"}, notInText: []string{"Nous avons"}},
		// The title's language cannot be told: sent whole.
		{id: "INC-80077770:1", locale: "it", lang: "it", subject: "Incident affecting payment processing",
			text: []string{"Abbiamo identificato un problema"}, notInText: []string{"Nous avons"}},
		{id: "INC-80077770:1", locale: "fr", lang: "fr", subject: "Incident affecting payment processing",
			text: []string{"Nous avons identifié un incident"}, notInText: []string{"Abbiamo"}},
		// An English title: French readers get the catalog's title.
		{id: "INC-9f682075:1", locale: "fr", lang: "fr", subject: "Incident affectant Notifications",
			text: []string{"Depuis le 08/04", "L'équipe Payplug"}, notInText: []string{"Payment notifications partially impacted", "Since 08th April"}},
		{id: "INC-9f682075:1", locale: "en", lang: "en", subject: "Payment notifications partially impacted",
			text: []string{"Since 08th April"}, notInText: []string{"L'équipe Payplug", "Depuis le"}},
		// The category is given in French and English only.
		{id: "INC-e9b27044:1", locale: "it", lang: "it", notInSubject: "Authentication",
			text: []string{"Categoria: 3DS authentication", "Priorità: P1", "L'autenticazione 3DS non è attualmente disponibile"}, notInText: []string{"ENGLISH VERSION", "Every 3DS"}},
		{id: "INC-e9b27044:1", locale: "fr", lang: "fr",
			text: []string{"Catégorie : Authentification 3D Secure", "Début : 01/06/2023 10h18 (CEST)", "Fin : En cours"}, notInText: []string{"VERSION FRANCAISE"}},
	} {
		out := render(tc.id, tc.locale, ChannelEmail)
		where := tc.id + " " + tc.locale
		if out.Locale != tc.lang || out.Fallback != tc.fallback {
			t.Errorf("%s: locale %s fallback %v, want %s %v", where, out.Locale, out.Fallback, tc.lang, tc.fallback)
		}
		if !strings.Contains(out.Subject, tc.subject) || (tc.notInSubject != "" && strings.Contains(out.Subject, tc.notInSubject)) {
			t.Errorf("%s: subject %q, want %q and not %q", where, out.Subject, tc.subject, tc.notInSubject)
		}
		text := spaces.Replace(out.Text)
		for _, s := range tc.text {
			if !strings.Contains(text, s) {
				t.Errorf("%s: text lacks %q:\n%s", where, s, out.Text)
			}
		}
		for _, s := range tc.notInText {
			if strings.Contains(text, s) {
				t.Errorf("%s: text holds %q:\n%s", where, s, out.Text)
			}
		}
	}

	// The webhook payload carries every language and the parsed header.
	var p struct {
		Data struct {
			Title  map[string]string `json:"title"`
			Body   map[string]string `json:"body"`
			Header *struct {
				Reference      string            `json:"reference"`
				Start          *string           `json:"start"`
				End            *string           `json:"end"`
				Ongoing        bool              `json:"ongoing"`
				Responsibility map[string]string `json:"responsibility"`
				Priority       string            `json:"priority"`
			} `json:"header"`
		} `json:"data"`
	}
	if err := json.Unmarshal(render("TSR-1532:1", "fr", ChannelWebhook).Body, &p); err != nil {
		t.Fatal(err)
	}
	d := p.Data
	if len(d.Title) != 3 || len(d.Body) != 3 || !strings.HasPrefix(d.Body["it"], "Tra le 16.11") || d.Header == nil {
		t.Fatalf("webhook data %+v", d)
	}
	if h := d.Header; h.Reference != "TSR-1532" || h.Priority != "P1" || h.Start == nil || *h.Start != "2025-03-27T16:11:00+01:00" ||
		h.End == nil || *h.End != "2025-03-27T16:23:00+01:00" || h.Ongoing || h.Responsibility[""] != "Payplug" {
		t.Errorf("webhook header %+v", *h)
	}
}

// spaces turns the no-break spaces of French typography into spaces.
var spaces = strings.NewReplacer("\u00a0", " ", "\u202f", " ")

// TestDates checks that dates follow the locale's conventions and the
// recipient's time zone, and that a header date without time of day is
// shown as written.
func TestDates(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	started := time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)
	ev := &incident.Event{ID: "D-1:1", IncidentID: "D-1", Sequence: 1, Status: incident.Investigating,
		Title: incident.PlainText("Paiements indisponibles / Payments unavailable / Pagamenti non disponibili"),
		Body: incident.PlainText("TSR-1 - Début / Start / Inizio : 02/05/2025 - Fin / End / Fine : 03/05/2025 18h30 CEST" +
			" FR Les paiements sont indisponibles. EN Payments are unavailable. IT I pagamenti non sono disponibili."),
		StartedAt: &started, PublishedAt: &started}
	for _, tc := range []struct {
		locale, zone string
		want         []string
	}{
		{"fr", "Europe/Paris", []string{"Début : 03/05/2025 16h11 (CEST)", "Fin : 03/05/2025 18h30 (CEST)"}},
		{"en", "Europe/Paris", []string{"Started: May 3, 2025, 4:11 PM (CEST)", "Ended: May 3, 2025, 6:30 PM (CEST)"}},
		{"it", "Europe/Rome", []string{"Inizio: 03/05/2025 16:11 (CEST)", "Fine: 03/05/2025 18:30 (CEST)"}},
		{"en", "America/New_York", []string{"Started: May 3, 2025, 10:11 AM (EDT)", "Ended: May 3, 2025, 12:30 PM (EDT)"}},
	} {
		rc := testRecipient(t, tc.locale)
		rc.Location = mustLocation(t, tc.zone)
		out, err := r.Render(Update{Event: ev, AcceptedAt: started}, ChannelEmail, rc)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(spaces.Replace(out.Text), w) {
				t.Errorf("%s %s: text lacks %q:\n%s", tc.locale, tc.zone, w, out.Text)
			}
		}
	}
	// Without started_at, the header's start date is shown as written, in
	// the locale's date format, whatever the zone.
	ev.StartedAt = nil
	for locale, want := range map[string]string{"fr": "Début : 02/05/2025\n", "en": "Started: May 2, 2025\n", "it": "Inizio: 02/05/2025\n"} {
		rc := testRecipient(t, locale)
		rc.Location = mustLocation(t, "Pacific/Auckland")
		out, err := r.Render(Update{Event: ev, AcceptedAt: started}, ChannelEmail, rc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(spaces.Replace(out.Text), want) {
			t.Errorf("%s: text lacks %q:\n%s", locale, want, out.Text)
		}
	}
}
