package subscribers

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
)

// TestPendingPausedAndFollowers: pending endpoints and paused subscribers
// get no update; a follower gets its incident's updates only, up to the
// update that ended its subscription.
func TestPendingPausedAndFollowers(t *testing.T) {
	t.Parallel()
	for _, collide := range []bool{false, true} {
		x := NewIndex(nil)
		if collide {
			x.hash = func(string) uint64 { return 7 }
		}
		now := time.Now()
		x.Upsert(&Subscriber{ID: "pend", Endpoints: []Endpoint{
			{ID: "m", Channel: "email", Address: "a@x.example"},
			{ID: "s", Channel: "sms", Address: "+33612345678", Pending: &Pending{Since: now}},
		}}, 1)
		x.Upsert(&Subscriber{ID: "paused", Paused: true, Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "A@x.example"}}}, 2)
		x.Upsert(&Subscriber{ID: "fol", Follow: &Follow{IncidentID: "INC-1"}, Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "f@x.example"}}}, 3)
		x.Upsert(&Subscriber{ID: "fol2", Follow: &Follow{IncidentID: "INC-1", EndedAfter: 3}, Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "g@x.example"}}}, 4)
		x.Upsert(&Subscriber{ID: "folpending", Follow: &Follow{IncidentID: "INC-1"}, Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "h@x.example", Pending: &Pending{}}}}, 5)
		for _, tc := range []struct {
			q    Query
			want string
		}{
			{Query{Status: incident.Investigating}, "pend/m"},
			{Query{Status: incident.Investigating, IncidentID: "INC-2", Sequence: 1}, "pend/m"},
			{Query{Status: incident.Investigating, IncidentID: "INC-1", Sequence: 2}, "fol/m fol2/m pend/m"},
			{Query{Status: incident.Resolved, IncidentID: "INC-1", Sequence: 3}, "fol/m fol2/m pend/m"},
			{Query{Status: incident.Postmortem, IncidentID: "INC-1", Sequence: 4}, "fol/m pend/m"},
		} {
			if got := targets(x.Audience(tc.q)); got != tc.want {
				t.Errorf("collide=%v: Audience(%+v) = %q, want %q", collide, tc.q, got, tc.want)
			}
			// The translation coverage counts the same subscribers.
			n := 0
			for _, c := range x.AudienceLocales(tc.q) {
				n += c
			}
			if want := len(strings.Fields(tc.want)); n != want {
				t.Errorf("collide=%v: AudienceLocales(%+v) counts %d subscribers, want %d", collide, tc.q, n, want)
			}
		}
		if got := x.Holders("email", " a@X.example"); !slices.Contains(got, "pend") || !slices.Contains(got, "paused") {
			t.Errorf("Holders = %v", got)
		}
		if got := x.Holders("sms", "+33612345678"); !slices.Contains(got, "pend") {
			t.Errorf("Holders(sms) = %v", got)
		}
		if f := x.Followers("INC-1"); len(f) != 3 || f["fol"] || !f["fol2"] {
			t.Errorf("Followers = %v", f)
		}
		// Changes replace the extra entries; removal forgets them.
		x.Upsert(&Subscriber{ID: "fol", Follow: &Follow{IncidentID: "INC-9"}, Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "new@x.example"}}}, 6)
		x.Remove("pend")
		if f := x.Followers("INC-1"); f["fol"] || len(f) != 2 {
			t.Errorf("after the change: Followers = %v", f)
		}
		if got := x.Holders("email", "f@x.example"); slices.Contains(got, "fol") && !collide {
			t.Errorf("the old address still holds: %v", got)
		}
		if got := x.Holders("sms", "+33612345678"); slices.Contains(got, "pend") {
			t.Errorf("a removed subscriber still holds: %v", got)
		}
	}
}

func TestCheckSMSNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		number    string
		countries []string
		want      error
	}{
		{"+33612345678", nil, nil},
		{"+393471234567", []string{"FR", "it"}, nil},
		{"+12015550123", nil, nil},           // US: fixed line or mobile
		{"+33899123456", nil, ErrNotMobile},  // premium rate
		{"+19005550100", nil, ErrNotMobile},  // premium rate
		{"+881612345678", nil, ErrNotMobile}, // satellite
		{"+33123456789", nil, ErrNotMobile},  // fixed line
		{"+41791234567", []string{"FR", "IT"}, ErrCountry},
	} {
		err := Rules{SMSCountries: tc.countries}.CheckSMSNumber(tc.number)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckSMSNumber(%s, %v) = %v, want %v", tc.number, tc.countries, err, tc.want)
		}
	}
	// The check applies when a subscriber is written.
	s := &Subscriber{ID: "m", Locale: "fr", Endpoints: []Endpoint{{ID: "s", Channel: "sms", Address: "+33 8 99 12 34 56"}}}
	var fe FieldErrors
	if err := (Rules{}).Normalize(s); !errors.As(err, &fe) || fe[0].Field != "endpoints[0].address" {
		t.Fatalf("a premium-rate number written: %v", err)
	}
}

func TestSigningSecretDuringRotation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	until := now.Add(24 * time.Hour)
	ep := Endpoint{Secret: "whsec_new", PreviousSecret: "whsec_old", PreviousSecretUntil: &until}
	if got := ep.SigningSecret(now); got != secret.Value("whsec_new whsec_old") {
		t.Fatalf("during the overlap: %q", got.Reveal())
	}
	if got := ep.SigningSecret(until); got != "whsec_new" {
		t.Fatalf("after the overlap: %q", got.Reveal())
	}
	v := (&Subscriber{Endpoints: []Endpoint{ep}}).Redacted()
	if v.Endpoints[0].PreviousSecret == "whsec_old" {
		t.Fatal("previous secret not masked")
	}
	data, err := encode(&Subscriber{ID: "m", Endpoints: []Endpoint{ep}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := decode(data)
	if err != nil || back.Endpoints[0].PreviousSecret != "whsec_old" || !back.Endpoints[0].PreviousSecretUntil.Equal(until) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestFollowAndRotationValidated(t *testing.T) {
	t.Parallel()
	until := time.Now()
	for _, tc := range []struct {
		s     Subscriber
		field string
	}{
		{Subscriber{ID: "f", Locale: "en", Follow: &Follow{IncidentID: "bad id!"},
			Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "a@b.example"}}}, "follow.incident_id"},
		{Subscriber{ID: "w", Locale: "en", Endpoints: []Endpoint{{ID: "h", Channel: "webhook", URL: "https://h.example/x",
			Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", PreviousSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}, "endpoints[0].previous_secret_until"},
		{Subscriber{ID: "w", Locale: "en", Endpoints: []Endpoint{{ID: "h", Channel: "webhook", URL: "https://h.example/x",
			Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", PreviousSecret: "nope", PreviousSecretUntil: &until}}}, "endpoints[0].previous_secret"},
		{Subscriber{ID: "e", Locale: "en", Endpoints: []Endpoint{{ID: "m", Channel: "email", Address: "a@b.example", PreviousSecret: "whsec_x"}}}, "endpoints[0].previous_secret"},
	} {
		var fe FieldErrors
		if err := (Rules{}).Normalize(&tc.s); !errors.As(err, &fe) || !slices.ContainsFunc(fe, func(f FieldError) bool { return f.Field == tc.field }) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
}
