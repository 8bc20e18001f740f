package templates_test

import (
	"fmt"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/templates"
)

func Example() {
	r, err := templates.New(templates.Config{StatusPageURL: "https://status.example.com"})
	if err != nil {
		panic(err)
	}
	published := time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)
	ev := &incident.Event{
		ID: "TSR-1610:3", IncidentID: "TSR-1610", Sequence: 3, Status: incident.Monitoring, Priority: incident.P2,
		Components:  []string{"nexo-terminals"},
		Title:       incident.LocalizedText(map[string]string{"fr": "Double prélèvement", "en": "Duplicate charges"}),
		Body:        incident.LocalizedText(map[string]string{"fr": "Un correctif est déployé.", "en": "A fix is deployed."}),
		URL:         "https://status.example.com/incidents/TSR-1610",
		PublishedAt: &published,
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tag := range []string{"fr-BE", "it-CH", "en-GB"} {
		out, err := r.Render(templates.Update{Event: ev}, "sms", templates.Recipient{Locale: tag, Location: paris})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s → %s, text in %s (confidence %s, fallback %v), %d segment(s) %s:\n%s\n\n", tag, out.Frame, out.Locale, out.Confidence, out.Fallback, out.Segments, out.Encoding, out.Text)
	}
	// Output:
	// fr-BE → fr, text in fr (confidence high, fallback false), 1 segment(s) GSM-7:
	// Sous surveillance (P2) : Double prélèvement
	// Un correctif est déployé.
	// https://status.example.com/incidents/TSR-1610
	//
	// it-CH → it, text in en (confidence high, fallback true), 1 segment(s) GSM-7:
	// In monitoraggio (P2): Duplicate charges
	// A fix is deployed.
	// https://status.example.com/incidents/TSR-1610
	//
	// en-GB → en, text in en (confidence high, fallback false), 1 segment(s) GSM-7:
	// Monitoring (P2): Duplicate charges
	// A fix is deployed.
	// https://status.example.com/incidents/TSR-1610
}
