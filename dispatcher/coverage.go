package dispatcher

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// Coverage is an update's translation coverage among its audience: the
// languages it carries and, per language its subscribers read, how many
// get a fallback.
type Coverage = templates.Coverage

// LocaleCoverage is the coverage of the readers of one language.
type LocaleCoverage = templates.LocaleCoverage

// CoverageRenderer is what computing a coverage needs of the renderer;
// *templates.Renderer has it.
type CoverageRenderer interface {
	Coverage(u templates.Update, readers map[string]int) (*templates.Coverage, error)
	Missing(c *templates.Coverage, required []string) []string
}

// ErrNoCoverage is returned when the renderer cannot tell an update's
// languages (it is not a [CoverageRenderer]).
var ErrNoCoverage = errors.New("dispatcher: the renderer cannot report translation coverage")

// UpdateCoverage computes the coverage of ev among the subscribers of ix
// it goes to, as the fan-out would select them (an update without a
// priority counts as unrated; the followers of its incident are in).
func UpdateCoverage(ix *subscribers.Index, r CoverageRenderer, ev *incident.Event, unrated incident.Priority, now time.Time) (*Coverage, error) {
	prio := ev.Priority
	if prio == "" {
		prio = unrated
	}
	readers := ix.AudienceLocales(subscribers.Query{Components: ev.Components, Priority: prio, Status: ev.Status,
		IncidentID: ev.IncidentID, Sequence: ev.Sequence})
	return r.Coverage(templates.Update{Event: ev, AcceptedAt: now}, readers)
}

// Coverage returns the coverage of ev among the current subscribers.
func (d *Dispatcher) Coverage(ev *incident.Event) (*Coverage, error) {
	r, ok := d.renderer.(CoverageRenderer)
	if !ok {
		return nil, ErrNoCoverage
	}
	return UpdateCoverage(d.index, r, ev, d.cfg.UnratedPriority, d.cfg.Now())
}

// CheckLocales refuses ev when it lacks languages req requires for its
// priority: a *[MissingLocalesError].
func (d *Dispatcher) CheckLocales(req RequiredLocales, ev *incident.Event, cov *Coverage) error {
	r, ok := d.renderer.(CoverageRenderer)
	if !ok {
		return ErrNoCoverage
	}
	return CheckLocales(r, req, ev, d.cfg.UnratedPriority, cov)
}

// RequiredLocales lists, per priority, the languages an update must carry
// to be published ({"P1": ["fr", "en", "it"]}).
type RequiredLocales map[incident.Priority][]string

// Validate checks that every key is a priority and every language a BCP 47
// tag.
func (rl RequiredLocales) Validate() error {
	for p, langs := range rl {
		if !p.Valid() {
			return fmt.Errorf("require_locales: %q is not a priority (P1..P4)", p)
		}
		for _, l := range langs {
			if _, err := language.Parse(l); err != nil || l == "" {
				return fmt.Errorf("require_locales %s: %q is not a BCP 47 language tag", p, l)
			}
		}
	}
	return nil
}

// CheckLocales refuses ev when cov, its coverage, lacks languages req
// requires for its priority (unrated when it has none): a
// *[MissingLocalesError] naming them, sorted.
func CheckLocales(r CoverageRenderer, req RequiredLocales, ev *incident.Event, unrated incident.Priority, cov *Coverage) error {
	prio := ev.Priority
	if prio == "" {
		prio = unrated
	}
	if len(req[prio]) == 0 {
		return nil
	}
	missing := r.Missing(cov, req[prio])
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return &MissingLocalesError{Priority: prio, Missing: missing}
}

// MissingLocalesError refuses an update that lacks languages its priority
// requires.
type MissingLocalesError struct {
	// Priority is the priority checked (the unrated one when the update
	// has none).
	Priority incident.Priority
	// Missing lists the languages the update lacks.
	Missing []string
}

// Error names the missing languages.
func (e *MissingLocalesError) Error() string {
	prio := string(e.Priority)
	if prio == "" {
		prio = "unrated"
	}
	return fmt.Sprintf("the update lacks %s, required for %s updates (allow a fallback to publish it anyway)", strings.Join(e.Missing, ", "), prio)
}
