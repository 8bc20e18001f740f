package multilingual

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestSplitBody(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	for _, tc := range []struct {
		name, in string
		// langs are the parts' languages in order ("?" unknown).
		langs string
		// markers are the parts' markers, "|"-separated (checked when set).
		markers string
		// texts are expected texts per language (prefix match).
		texts map[string]string
	}{
		{name: "codes", in: "FR Le service est rétabli depuis ce matin. EN The service has been restored since this morning. IT Il servizio è stato ripristinato da stamattina.",
			langs: "fr,en,it", markers: "FR|EN|IT",
			texts: map[string]string{"fr": "Le service est rétabli depuis ce matin.", "en": "The service has been restored since this morning.", "it": "Il servizio è stato ripristinato da stamattina."}},
		{name: "codes with colons", in: "FR : Le trafic est entièrement rétabli depuis 11h48. EN : Traffic is stable since 11:48.",
			langs: "fr,en", markers: "FR :|EN :"},
		{name: "code without full stop", in: "FR Une action est en cours pour rétablir le service EN We are working to restore the service as quickly as possible.",
			langs: "fr,en", markers: "FR|EN",
			texts: map[string]string{"fr": "Une action est en cours pour rétablir le service", "en": "We are working"}},
		{name: "IT as a word", in: "Our IT teams are investigating the incident and will restore the service as soon as possible.",
			langs: "en", markers: "", texts: map[string]string{"en": "Our IT teams are investigating"}},
		{name: "banner", in: "Le service est interrompu depuis ce matin, nous recherchons la cause. ==============ENGLISH VERSION============== The service has been down since this morning, we are looking for the cause.",
			langs: "fr,en", markers: "|==============ENGLISH VERSION==============",
			texts: map[string]string{"fr": "Le service est interrompu", "en": "The service has been down"}},
		{name: "banners with spaces", in: "==============VERSION FRANCAISE ============== Le service est interrompu depuis ce matin. ============== ITALIA ============== Il servizio è interrotto da stamattina.",
			langs: "fr,it", markers: "==============VERSION FRANCAISE ==============|============== ITALIA =============="},
		{name: "rule without language", in: "Nous avons identifié un incident qui concerne les paiements en ligne. ---------- Abbiamo identificato un incidente che riguarda i pagamenti online.",
			langs: "fr,it", markers: "|----------",
			texts: map[string]string{"fr": "Nous avons identifié", "it": "Abbiamo identificato"}},
		{name: "in italiano", in: "Le service est rétabli depuis 18h25 et nous continuons de surveiller la situation. In italiano : Il servizio è stato ripristinato dalle 18:25 e continuiamo a monitorare la situazione.",
			langs: "fr,it", markers: "|In italiano :"},
		{name: "in Italian after a rule, no colon", in: "Les paiements ont été interrompus entre 13h37 et 14h01. --------------------- In Italian I pagamenti sono stati interrotti tra le 13:37 e le 14:01.",
			langs: "fr,it", markers: "|--------------------- In Italian",
			texts: map[string]string{"it": "I pagamenti sono stati interrotti"}},
		{name: "bold in italiano after a dash rule", in: "Améliorer le monitoring des paiements. —------------------- **In Italiano :** Migliorare il monitoraggio dei pagamenti.",
			langs: "fr,it", markers: "|—------------------- **In Italiano :**"},
		{name: "note", in: "# _English version below_ # Post Mortem **Impact client** Aucun paiement n'a été accepté durant 13 minutes. ==============ENGLISH VERSION============== # Post Mortem **Client impact** No payment was accepted during 13 minutes.",
			langs: "fr,en", markers: "# _English version below_|==============ENGLISH VERSION==============",
			texts: map[string]string{"fr": "# Post Mortem **Impact client**", "en": "# Post Mortem **Client impact**"}},
		{name: "table rule is text", in: "| **Symptôme** | **Action** | | ----- | ----- | | Expiration du certificat | Inventaire des certificats de la plateforme |",
			langs: "fr", markers: ""},
		{name: "greeting starts a language", in: "Bonjour, Nous constatons un retour à la normale pour toutes les adresses email Hello, We are seeing a return to normal for every email address.",
			langs: "fr,en",
			texts: map[string]string{"fr": "Bonjour, Nous constatons", "en": "Hello, We are seeing"}},
		{name: "switch inside a sentence", in: "Nous vous présentons nos excuses pour la gêne occasionnée. L'équipe Payplug Since 08th April, some payment notification emails are blocked or are not received at all.",
			langs: "fr,en",
			texts: map[string]string{"fr": "Nous vous présentons nos excuses pour la gêne occasionnée. L'équipe Payplug", "en": "Since 08th April"}},
		{name: "sentences without markers", in: "Nous venons d'avoir un retour de notre partenaire bancaire. Vos clients seront crédités d'ici mercredi. We just got a reply from our banking partner. Your customers will be credited on Wednesday.",
			langs: "fr,en",
			texts: map[string]string{"fr": "Nous venons d'avoir", "en": "We just got a reply"}},
		{name: "English term in French", in: "Nous continuons d'investiguer sur la root cause de cet incident avec notre prestataire. Le service est rétabli depuis 15h42 et nous surveillons la reprise.",
			langs: "fr"},
		{name: "one language", in: "This incident has been resolved.", langs: "en", markers: ""},
		{name: "unknown", in: "12:30 - 13:05 (UTC)", langs: "?"},
		{name: "empty", in: "", langs: ""},
		{name: "header and codes", in: "TSR-1723 - Début / Start / Inizio : 03/05/2025 - Fin / End /fine : 07/05/2025 - Catégorie / Category / Categoria: Production - Oney - Responsabilité / Responsibility / Responsabilità : Externe / External /Esterna FR Les dossiers ont été annulés, vos clients seront remboursés. EN The applications have been cancelled, your customers will be refunded. IT Le pratiche sono state annullate, i vostri clienti saranno rimborsati.",
			langs: "fr,en,it", markers: "FR|EN|IT"},
		{name: "header then unmarked text", in: "- Début / Start : 13/05/2023 19h41 CEST - Fin / End : Ongoing - Catégorie / Category : Production - Responsabilité / Responsibility : Payplug - Priorité / Priority : P2 Nous avons observé une hausse des codes d'erreur sur les authentifications.",
			langs: "fr", texts: map[string]string{"fr": "Nous avons observé"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.SplitBody(tc.in)
			checkLossless(t, tc.name, tc.in, r)
			if got := langsOf(r); got != tc.langs {
				t.Errorf("languages %q, want %q: %+v", got, tc.langs, r.Parts)
			}
			if tc.markers != "" || tc.langs == "en" {
				var ms []string
				for _, p := range r.Parts {
					ms = append(ms, p.Marker)
				}
				if got := strings.Join(ms, "|"); got != tc.markers {
					t.Errorf("markers %q, want %q", got, tc.markers)
				}
			}
			texts := r.Texts()
			for lang, want := range tc.texts {
				if !strings.HasPrefix(texts[lang], want) {
					t.Errorf("%s text %q, want it to start with %q", lang, texts[lang], want)
				}
			}
			if tc.langs == "?" && len(texts) != 0 {
				t.Errorf("unknown language has texts %v", texts)
			}
			for _, p := range r.Parts {
				if strings.TrimSpace(p.Text) != p.Text || strings.TrimSpace(p.Marker) != p.Marker {
					t.Errorf("part not trimmed: %+v", p)
				}
			}
		})
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(layout, v string) *time.Time {
		tm, err := time.Parse(layout, v)
		if err != nil {
			t.Fatal(err)
		}
		return &tm
	}
	day := func(v string) *time.Time { return at(time.DateOnly, v) }
	utc := func(v string) *time.Time { return at(time.RFC3339, v) }
	for _, tc := range []struct {
		name, in string
		want     *Header // nil: no header
		rest     string  // the body after the header starts so
	}{
		{name: "three languages, ongoing",
			in: "TSR-1723 - Début / Start / Inizio : 03/05/2025 - Fin / End /fine : En cours / Ongoing / In corso. - Catégorie / Category / Categoria: Production - Oney - Responsabilité / Responsibility / Responsabilità : Externe / External /Esterna FR Nous avons été informés d'un incident.",
			want: &Header{Reference: "TSR-1723", Start: day("2025-05-03"), StartDateOnly: true, StartText: "03/05/2025",
				EndText: "En cours / Ongoing / In corso", Ongoing: true,
				Category:       map[string]string{"": "Production - Oney"},
				Responsibility: map[string]string{"fr": "Externe", "en": "External", "it": "Esterna"}},
			rest: "FR Nous avons été informés"},
		{name: "times in CEST, priority",
			in: "SRM-6195 - Début / Start : 25/06/2024 13h37 CEST - Fin / End : 25/06/2024 13h54 CEST - Catégorie / Category : Production - Processing - Responsabilité / Responsibility : A confirmer / To be confirmed - Priorité / Priority : P1 FR L'incident est résolu.",
			want: &Header{Reference: "SRM-6195", Start: utc("2024-06-25T11:37:00Z"), StartText: "25/06/2024 13h37 CEST",
				End: utc("2024-06-25T11:54:00Z"), EndText: "25/06/2024 13h54 CEST",
				Category:       map[string]string{"": "Production - Processing"},
				Responsibility: map[string]string{"fr": "A confirmer", "en": "To be confirmed"}, Priority: "P1"},
			rest: "FR L'incident est résolu."},
		{name: "CET in winter, category per language",
			in: "- Début / Start / Inizio : 27/03/2025 16h11 CET - Fin / End / Fine : En cours - Catégorie / Category / Categoria : Authentification 3D Secure / 3DS authentication - Responsabilité / Responsibility / Responsabilità : Payplug - Priorité / Priority / Priorità : P1 ==============ENGLISH VERSION============== Text.",
			want: &Header{Start: utc("2025-03-27T15:11:00Z"), StartText: "27/03/2025 16h11 CET", EndText: "En cours", Ongoing: true,
				Category:       map[string]string{"fr": "Authentification 3D Secure", "en": "3DS authentication"},
				Responsibility: map[string]string{"": "Payplug"}, Priority: "P1"},
			rest: "=============="},
		{name: "zone written wrong: Paris wall time",
			in:   "SMP-2537 - Début / Start : 13/03/2024 15h24 CEST - Fin / End : 13/03/2024 15h42 CEST FR Le service est rétabli.",
			want: &Header{Reference: "SMP-2537", Start: utc("2024-03-13T14:24:00Z"), StartText: "13/03/2024 15h24 CEST", End: utc("2024-03-13T14:42:00Z"), EndText: "13/03/2024 15h42 CEST"},
			rest: "FR Le service"},
		{name: "12-hour clock, dated start, terminals category",
			in: "TSR-436 - Début / Start : 12/09/2024 - Fin / End : 12/09/2024 12.07AM CEST - Catégorie / Category : Production - Terminaux de paiement / Payment terminals - Responsabilité / Responsibility : Payplug - Priorité / Priority : P2 FR L'incident est résolu.",
			want: &Header{Reference: "TSR-436", Start: day("2024-09-12"), StartDateOnly: true, StartText: "12/09/2024",
				End: utc("2024-09-11T22:07:00Z"), EndText: "12/09/2024 12.07AM CEST",
				Category:       map[string]string{"fr": "Production - Terminaux de paiement", "en": "Payment terminals"},
				Responsibility: map[string]string{"": "Payplug"}, Priority: "P2"},
			rest: "FR"},
		{name: "trailing full stops, UTC offset",
			in:   "TSR-1572 - Début / Start / Inizio : 01/04/2025. - Fin / End /fine : 15/04/2025 10h00 UTC+1. - Responsabilité / Responsibility / Responsabilità : Payplug FR Les factures.",
			want: &Header{Reference: "TSR-1572", Start: day("2025-04-01"), StartDateOnly: true, StartText: "01/04/2025", End: utc("2025-04-15T09:00:00Z"), EndText: "15/04/2025 10h00 UTC+1", Responsibility: map[string]string{"": "Payplug"}},
			rest: "FR"},
		{name: "priority last, text without marker",
			in:   "- Début / Start : 13/05/2023 19h41 CEST - Fin / End : Ongoing - Priorité / Priority : P2 Nous avons observé une hausse.",
			want: &Header{Start: utc("2023-05-13T17:41:00Z"), StartText: "13/05/2023 19h41 CEST", EndText: "Ongoing", Ongoing: true, Priority: "P2"},
			rest: "Nous avons observé"},
		{name: "responsibility last, text without marker",
			in:   "TSR-1 - Début / Start : 01/02/2025 - Responsabilité / Responsibility : Payplug Nous avons observé une hausse des erreurs sur la plateforme de paiement, des équipes sont mobilisées pour corriger le problème au plus vite.",
			want: &Header{Reference: "TSR-1", Start: day("2025-02-01"), StartDateOnly: true, StartText: "01/02/2025", Responsibility: map[string]string{"": "Payplug"}},
			rest: "Nous avons observé"},
		{name: "impossible date kept as text",
			in:   "Début / Start : 31/02/2025 25h99 - Fin / End : demain FR Texte.",
			want: &Header{StartText: "31/02/2025 25h99", EndText: "demain"},
			rest: "FR"},
		{name: "one field is not a header", in: "Début / Start : 03/05/2025 FR Nous avons été informés d'un incident."},
		{name: "labels in the text are not a header", in: "Nous avons été informés d'un incident. Début / Start : 03/05/2025 - Fin / End : 04/05/2025"},
		{name: "reference alone is not a header", in: "TSR-1723 - Nous avons été informés d'un incident."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.SplitBody(tc.in)
			checkLossless(t, tc.name, tc.in, r)
			if tc.want == nil {
				if r.Header != nil {
					t.Fatalf("header %+v in a text without one", r.Header)
				}
				return
			}
			h := r.Header
			if h == nil {
				t.Fatal("no header")
			}
			w := tc.want
			if h.Reference != w.Reference || h.StartText != w.StartText || h.EndText != w.EndText || h.Ongoing != w.Ongoing ||
				h.Priority != w.Priority || h.StartDateOnly != w.StartDateOnly || h.EndDateOnly != w.EndDateOnly ||
				!maps.Equal(h.Category, w.Category) || !maps.Equal(h.Responsibility, w.Responsibility) {
				t.Errorf("header\n got %+v\nwant %+v", *h, *w)
			}
			for _, d := range []struct {
				name      string
				got, want *time.Time
				dateOnly  bool
			}{{"start", h.Start, w.Start, h.StartDateOnly}, {"end", h.End, w.End, h.EndDateOnly}} {
				switch {
				case (d.got == nil) != (d.want == nil):
					t.Errorf("%s %v, want %v", d.name, d.got, d.want)
				case d.got != nil && !d.got.Equal(*d.want):
					t.Errorf("%s %v, want %v", d.name, d.got, d.want)
				case d.got != nil && !d.dateOnly && d.got.Location().String() != paris.String() && d.got.Location() != time.UTC && !strings.HasPrefix(d.got.Location().String(), "UTC"):
					t.Errorf("%s in %v", d.name, d.got.Location())
				}
			}
			body := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tc.in), h.Raw))
			if !strings.HasPrefix(body, tc.rest) {
				t.Errorf("body after the header starts %q, want %q", body, tc.rest)
			}
		})
	}
}

func TestSplitTitle(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	for _, tc := range []struct {
		name, in, prefix, langs string
		texts                   map[string]string
	}{
		{name: "three translations after a tag", in: "INCIDENT PROCESSING | Perturbations paiement Oney / Oney payment disruptions / Perturbazioni pagamenti Oney",
			prefix: "INCIDENT PROCESSING |", langs: "fr,en,it",
			texts: map[string]string{"fr": "INCIDENT PROCESSING | Perturbations paiement Oney", "en": "INCIDENT PROCESSING | Oney payment disruptions", "it": "INCIDENT PROCESSING | Perturbazioni pagamenti Oney"}},
		{name: "two translations", in: "Incident paiement magasin / In-store payment incident", langs: "fr,en",
			texts: map[string]string{"fr": "Incident paiement magasin", "en": "In-store payment incident"}},
		{name: "identification overrules the order", in: "Payment platform disruptions / Perturbations de la plateforme de paiement", langs: "en,fr",
			texts: map[string]string{"en": "Payment platform disruptions", "fr": "Perturbations de la plateforme de paiement"}},
		{name: "date is not a separator", in: "Retard dans le reversement des transactions POS Ingenico du 25/11", langs: "fr",
			texts: map[string]string{"fr": "Retard dans le reversement des transactions POS Ingenico du 25/11"}},
		{name: "a name is not a translation", in: "Problème sur le réseau de paiement Nexo / Pax", langs: "fr"},
		{name: "same language twice is not a translation", in: "Paiements en ligne indisponibles pour tous les marchands / Virements retardés de plusieurs jours pour tous les marchands", langs: "fr"},
		{name: "one language", in: "Payment notifications partially impacted", langs: "en"},
		{name: "unknown", in: "Oney 3x 4x", langs: "?"},
		{name: "tag and unknown", in: "INCIDENT | Oney 3x 4x", prefix: "INCIDENT |", langs: "?"},
		{name: "empty", in: "", langs: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := s.SplitTitle(tc.in)
			checkLossless(t, tc.name, tc.in, r)
			if r.Header != nil {
				t.Error("a title has no header")
			}
			if r.Prefix != tc.prefix {
				t.Errorf("prefix %q, want %q", r.Prefix, tc.prefix)
			}
			if got := langsOf(r); got != tc.langs {
				t.Errorf("languages %q, want %q: %+v", got, tc.langs, r.Parts)
			}
			texts := r.Texts()
			for lang, want := range tc.texts {
				if texts[lang] != want {
					t.Errorf("%s title %q, want %q", lang, texts[lang], want)
				}
			}
		})
	}
}

func TestResultTexts(t *testing.T) {
	t.Parallel()
	r := Result{Prefix: "TAG |", Parts: []Part{
		{Lang: "fr", Text: "Un"}, {Lang: "fr", Text: "deux"}, {Lang: "en", Marker: "EN", Text: "One"},
		{Lang: "fr", Marker: "FR", Text: "trois"}, {Lang: "it", Marker: "IT"}, {Lang: "", Text: "?"},
	}}
	want := map[string]string{"fr": "TAG | Un deux\n\ntrois", "en": "TAG | One"}
	if got := r.Texts(); !maps.Equal(got, want) {
		t.Errorf("Texts() = %q, want %q", got, want)
	}
	if got := r.Languages([]string{"it", "en", "fr"}); strings.Join(got, ",") != "en,fr" {
		t.Errorf("Languages() = %v", got)
	}
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	for _, tc := range []struct {
		in, lang string
		sure     bool
	}{
		{"Nous avons identifié des difficultés sur la plateforme de paiement.", "fr", true},
		{"We have identified ongoing difficulties on the payment platform.", "en", true},
		{"Abbiamo identificato delle difficoltà sulla piattaforma di pagamento.", "it", true},
		{"", "", false},
		{"12:30 - 13:05", "", false},
	} {
		lang, conf := s.Identify(tc.in)
		if lang != tc.lang || (conf >= DefaultMinConfidence) != tc.sure {
			t.Errorf("Identify(%q) = %s %.2f, want %s (sure %v)", tc.in, lang, conf, tc.lang, tc.sure)
		}
	}
	de, err := New(Config{Languages: []string{"de", "en"}})
	if err != nil {
		t.Fatal(err)
	}
	if lang, conf := de.Identify("Wir haben Schwierigkeiten auf der Zahlungsplattform festgestellt."); lang != "de" || conf < DefaultMinConfidence {
		t.Errorf("German: %s %.2f", lang, conf)
	}
	one, err := New(Config{Languages: []string{"fr"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := one.SplitBody("We have identified ongoing difficulties. EN Some text."); langsOf(r) != "fr" {
		t.Errorf("single language: %s", langsOf(r))
	}
}

func TestConfigRejected(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Languages: []string{"xx"}},
		{Languages: []string{"FR"}},
		{Languages: []string{"fr-BE"}},
		{Languages: []string{""}},
		{Languages: []string{"fr", "fr"}},
		{MinConfidence: 1.5},
		{MinConfidence: -0.1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Languages(); strings.Join(got, ",") != "fr,en,it" {
		t.Errorf("default languages %v", got)
	}
	if !Identifiable("de") || Identifiable("xx") || Identifiable("") || Identifiable("EN") {
		t.Error("Identifiable")
	}
}
