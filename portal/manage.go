package portal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

func itoa(n int) string { return strconv.Itoa(n) }

type manageData struct {
	Paused     bool
	Prefs      prefsArgs
	Endpoints  []endpointView
	Secret     string
	SecretText string
}

type endpointView struct {
	ID, Channel, Address, State string
	Webhook                     bool
}

// managePage is the preference centre with a session, else the form that
// asks for a link.
func (s *Server) managePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, key, err := s.loadSession(ctx, r)
	if err != nil {
		s.check(w, r, pageLocale(r, ""), err)
		return
	}
	if sess == nil {
		lang := pageLocale(r, "")
		pg := s.newPage(w, r, lang, "manage.request_title")
		s.render(w, http.StatusOK, "manage_request", pg)
		return
	}
	sub, _, err := s.store.Get(ctx, sess.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		s.endSession(ctx, w, key)
		lang := pageLocale(r, "")
		pg := s.newPage(w, r, lang, "manage.request_title")
		pg.Errors = []string{pg.T("manage.session_over")}
		s.render(w, http.StatusOK, "manage_request", pg)
		return
	}
	if err != nil {
		s.check(w, r, pageLocale(r, ""), err)
		return
	}
	lang := pageLocale(r, sub.Locale)
	pg := s.newPage(w, r, lang, "manage.title")
	d := manageData{Paused: sub.Paused, Prefs: s.prefsForm(pg, prefsOf(sub), true)}
	for _, f := range sess.Flash {
		if f.Text != "" {
			pg.Errors = append(pg.Errors, f.Text)
			continue
		}
		switch {
		case f.Secret != "":
			d.Secret, d.SecretText = f.Secret, pg.T(f.Key, f.Args...)
		case f.Error:
			pg.Errors = append(pg.Errors, pg.T(f.Key, f.Args...))
		default:
			pg.Notes = append(pg.Notes, pg.T(f.Key, f.Args...))
		}
	}
	if len(sess.Flash) > 0 {
		sess.Flash = nil
		if err := s.saveSession(ctx, key, sess); err != nil {
			s.check(w, r, lang, err)
			return
		}
	}
	for _, ep := range sub.Endpoints {
		v := endpointView{ID: ep.ID, Channel: pg.T("endpoint." + ep.Channel), Address: shownAddress(&ep), Webhook: ep.Channel == "webhook"}
		switch {
		case ep.Pending != nil:
			v.State = pg.T("endpoint.pending")
		case ep.Disabled != nil:
			v.State = pg.T("endpoint.stopped", "reason", ep.Disabled.Reason)
		}
		d.Endpoints = append(d.Endpoints, v)
	}
	pg.Data = d
	s.render(w, http.StatusOK, "manage", pg)
}

// shownAddress is how an endpoint is shown to its owner: addresses in
// full, webhook URLs without their query, Slack hooks by host only (the
// URL is a credential).
func shownAddress(ep *subscribers.Endpoint) string {
	switch ep.Channel {
	case "webhook":
		if u, err := url.Parse(ep.URL); err == nil {
			return u.Scheme + "://" + u.Host + u.Path
		}
		return ep.URL
	case "slack":
		if ep.SlackChannel != "" {
			return ep.SlackChannel
		}
		if u, err := url.Parse(ep.WebhookURL.Reveal()); err == nil {
			return u.Host + "/…"
		}
		return "…"
	}
	return ep.Address
}

// manageRequest sends a link (email) or a code (SMS) to the address given,
// when it is subscribed; the answer is the same either way.
func (s *Server) manageRequest(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	ctx := r.Context()
	address := strings.TrimSpace(r.PostFormValue("address"))
	pg := s.newPage(w, r, lang, "manage.request_title")
	if strings.Contains(address, "@") {
		probe := &subscribers.Subscriber{ID: "probe", Locale: "en", Endpoints: []subscribers.Endpoint{{ID: "e", Channel: "email", Address: address}}}
		if err := (subscribers.Rules{}).Normalize(probe); err != nil {
			pg.Errors = []string{pg.T("error.email")}
			s.render(w, http.StatusBadRequest, "manage_request", pg)
			return
		}
		address = probe.Endpoints[0].Address
		if !s.check(w, r, lang, s.limitAddress(ctx, "email", address)) {
			return
		}
		for _, sub := range s.holders(ctx, "email", address) {
			if err := s.sendLogin(ctx, sub, "email", address); err != nil {
				s.check(w, r, lang, err)
				return
			}
		}
		s.message(w, r, http.StatusOK, lang, "manage.sent_title", "manage.sent_text", nil)
		return
	}
	phone, err := s.normalizePhone(address)
	if err != nil {
		pg.Errors = []string{phoneError(pg, err)}
		s.render(w, http.StatusBadRequest, "manage_request", pg)
		return
	}
	if !s.check(w, r, lang, s.limitAddress(ctx, "sms", phone)) {
		return
	}
	// A code for the first subscriber holding the number. An unknown
	// number gets a ticket of its own with a code nobody receives, so
	// that every later answer (a wrong code, tries left, too many tries)
	// is the one a known number gets: the page tells nothing.
	var sub *subscribers.Subscriber
	var ep *subscribers.Endpoint
	for _, h := range s.holders(ctx, "sms", phone) {
		for i := range h.Endpoints {
			if e := &h.Endpoints[i]; sub == nil && e.Channel == "sms" && e.Address == phone {
				sub, ep = h, e
			}
		}
	}
	// The platform cap is the same for every number; a known number past
	// its own daily cap is answered as an unknown one (no code is sent,
	// and the page does not say it exists).
	scope, err := s.smsScope(ctx, sub)
	if err != nil {
		s.check(w, r, lang, err)
		return
	}
	if scope == dispatcher.CapPlatform {
		s.smsCapPage(w, r, lang, scope)
		return
	}
	if scope != "" {
		s.logger.Warn("portal: no code sent, daily cap reached", "cap", scope, "subscriber", sub.ID)
		sub = nil
	}
	var ticket string
	if sub != nil {
		if ticket, err = s.sendCode(ctx, sub, ep); err != nil {
			s.check(w, r, lang, err)
			return
		}
	} else {
		blind := newID("x_")
		if _, err := s.newCode(ctx, codeKey(blind, smsEndpoint)); err != nil {
			s.check(w, r, lang, err)
			return
		}
		ticket = s.links.Seal(links.Code, blind, smsEndpoint, phone, s.cfg.CodeTTL+s.cfg.SessionTTL)
	}
	pg = s.newPage(w, r, lang, "code.title")
	pg.Data = codeData{Text: pg.T("subscribe.sent_phone"), Ticket: ticket}
	s.render(w, http.StatusOK, "code", pg)
}

// openLink opens a preference-centre link: a single-use one asked for on
// /manage, or the long-lived one of every notification.
func (s *Server) openLink(r *http.Request) (links.Claims, *subscribers.Subscriber, bool, error) {
	tok := r.PathValue("token")
	once := true
	c, err := s.links.Open(tok, links.Login)
	if errors.Is(err, links.ErrInvalid) {
		once = false
		c, err = s.links.Open(tok, links.Manage)
	}
	if err != nil {
		return c, nil, once, err
	}
	if once {
		if used, err := s.wasUsed(r.Context(), tok); err != nil {
			return c, nil, once, err
		} else if used {
			return c, nil, once, errUsed
		}
	}
	sub, _, err := s.store.Get(r.Context(), c.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		return c, nil, once, errGone
	}
	if err != nil {
		return c, nil, once, err
	}
	if ep := sub.Endpoint(c.EndpointID); ep == nil || !c.For(ep.Target()) {
		return c, nil, once, errGone
	}
	return c, sub, once, nil
}

func (s *Server) openPage(w http.ResponseWriter, r *http.Request) {
	c, sub, _, err := s.openLink(r)
	lang := pageLocale(r, "")
	if err != nil {
		s.pageForLink(w, r, lang, err)
		return
	}
	lang = pageLocale(r, sub.Locale)
	pg := s.newPage(w, r, lang, "manage.open_title")
	pg.Data = actionData{Text: pg.T("manage.open_text", "address", shownAddress(sub.Endpoint(c.EndpointID))),
		Action: r.URL.Path, Button: pg.T("manage.open_submit")}
	s.render(w, http.StatusOK, "action", pg)
}

func (s *Server) open(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	c, sub, once, err := s.openLink(r)
	if err != nil {
		s.pageForLink(w, r, lang, err)
		return
	}
	ctx := r.Context()
	if once {
		if first, err := s.markUsed(ctx, r.PathValue("token")); err != nil {
			s.check(w, r, lang, err)
			return
		} else if !first {
			s.linkError(w, r, lang, errUsed)
			return
		}
		// The link went to this address and came back: the address is
		// its owner's, confirmed.
		if ep := sub.Endpoint(c.EndpointID); ep.Pending != nil {
			if _, err := s.activate(ctx, c); err != nil {
				s.pageForActivation(w, r, lang, err)
				return
			}
		}
	}
	if err := s.startSession(ctx, w, &session{SubscriberID: sub.ID, EndpointID: c.EndpointID}); err != nil {
		s.check(w, r, lang, err)
		return
	}
	http.Redirect(w, r, "/manage?lang="+pageLocale(r, sub.Locale), http.StatusSeeOther)
}

// manageAction carries out one change of the preference centre, then
// shows the centre again (post, redirect, get).
func (s *Server) manageAction(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) {
		return
	}
	ctx := r.Context()
	sess, key, err := s.loadSession(ctx, r)
	if err != nil {
		s.check(w, r, lang, err)
		return
	}
	if sess == nil {
		pg := s.newPage(w, r, lang, "manage.request_title")
		pg.Errors = []string{pg.T("manage.session_over")}
		s.render(w, http.StatusUnauthorized, "manage_request", pg)
		return
	}
	if !s.limitIP(w, r, lang) {
		return
	}
	sub, _, err := s.store.Get(ctx, sess.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		s.endSession(ctx, w, key)
		s.message(w, r, http.StatusGone, lang, "manage.deleted_title", "manage.session_over", nil)
		return
	}
	if err != nil {
		s.check(w, r, lang, err)
		return
	}
	back := func() { http.Redirect(w, r, "/manage?lang="+lang, http.StatusSeeOther) }
	note := func(f ...flash) {
		sess.Flash = append(sess.Flash, f...)
		if err := s.saveSession(ctx, key, sess); err != nil {
			s.check(w, r, lang, err)
			return
		}
		back()
	}
	// put stores the changed subscriber, or notes why it cannot be.
	put := func(changed *subscribers.Subscriber, ok ...flash) {
		if _, err := s.store.Put(ctx, changed); err != nil {
			var fe subscribers.FieldErrors
			if !errors.As(err, &fe) {
				s.check(w, r, lang, err)
				return
			}
			var fl []flash
			for _, m := range fieldMessages(s.newPage(w, r, lang, "manage.title"), err) {
				fl = append(fl, flash{Text: m, Error: true})
			}
			note(fl...)
			return
		}
		note(ok...)
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	next := sub.Clone()
	switch r.PathValue("action") {
	case "preferences":
		p := readPrefs(r)
		p.apply(next)
		if p.Locale != "" {
			lang = p.Locale // the page follows the language chosen
		}
		put(next, flash{Key: "manage.saved"})
	case "pause":
		next.Paused = r.PostFormValue("paused") == "1"
		put(next, flash{Key: "manage.saved"})
	case "add-email":
		address := strings.TrimSpace(r.PostFormValue("email"))
		ep := subscribers.Endpoint{ID: newEndpointID(next, "mail"), Channel: "email", Address: address, Pending: &subscribers.Pending{Since: now}}
		next.Endpoints = append(next.Endpoints, ep)
		if err := s.cfg.Rules.Normalize(next); err != nil {
			put(next) // notes the problem
			return
		}
		added := next.Endpoint(ep.ID)
		if !s.check(w, r, lang, s.limitAddress(ctx, "email", added.Address)) {
			return
		}
		if _, err := s.store.Put(ctx, next); err != nil {
			s.check(w, r, lang, err)
			return
		}
		if err := s.sendConfirm(ctx, next, added, dispatcher.KindConfirm); err != nil {
			s.check(w, r, lang, err)
			return
		}
		note(flash{Key: "manage.added_pending", Args: []string{"address", added.Address}})
	case "add-phone":
		n, err := s.normalizePhone(r.PostFormValue("phone"))
		if err != nil {
			pg := s.newPage(w, r, lang, "manage.title")
			note(flash{Text: phoneError(pg, err), Error: true})
			return
		}
		ep := subscribers.Endpoint{ID: newEndpointID(next, "sms"), Channel: "sms", Address: n, Pending: &subscribers.Pending{Since: now}}
		if p := prefsOf(next); p.quiet() != nil {
			ep.QuietHours = p.quiet()
		}
		next.Endpoints = append(next.Endpoints, ep)
		if !s.check(w, r, lang, s.limitAddress(ctx, "sms", n)) || !s.smsAllowed(w, r, lang, next.ID) {
			return
		}
		if _, err := s.store.Put(ctx, next); err != nil {
			put(next)
			return
		}
		ticket, err := s.sendCode(ctx, next, next.Endpoint(ep.ID))
		if err != nil {
			s.check(w, r, lang, err)
			return
		}
		pg := s.newPage(w, r, lang, "code.title")
		pg.Data = codeData{Text: pg.T("subscribe.sent_phone"), Ticket: ticket}
		s.render(w, http.StatusOK, "code", pg)
	case "add-webhook":
		sec := newWebhookSecret()
		next.Endpoints = append(next.Endpoints, subscribers.Endpoint{ID: newEndpointID(next, "webhook"), Channel: "webhook",
			URL: strings.TrimSpace(r.PostFormValue("url")), Secret: secret.Value(sec)})
		put(next, flash{Key: "endpoint.secret_once", Secret: sec})
	case "add-slack":
		next.Endpoints = append(next.Endpoints, subscribers.Endpoint{ID: newEndpointID(next, "slack"), Channel: "slack",
			WebhookURL: secret.Value(strings.TrimSpace(r.PostFormValue("url")))})
		put(next, flash{Key: "manage.added"})
	case "remove":
		id := r.PostFormValue("endpoint")
		if next.Endpoint(id) == nil {
			back()
			return
		}
		if len(next.Endpoints) == 1 {
			note(flash{Key: "manage.last_endpoint", Error: true})
			return
		}
		next.Endpoints = slices.DeleteFunc(next.Endpoints, func(ep subscribers.Endpoint) bool { return ep.ID == id })
		put(next, flash{Key: "manage.removed"})
	case "rotate":
		ep := next.Endpoint(r.PostFormValue("endpoint"))
		if ep == nil || ep.Channel != "webhook" {
			back()
			return
		}
		until := now.Add(s.cfg.SecretOverlap)
		sec := newWebhookSecret()
		ep.PreviousSecret, ep.PreviousSecretUntil, ep.Secret = ep.Secret, &until, secret.Value(sec)
		put(next, flash{Key: "endpoint.rotated", Args: []string{"until", until.In(s.location(sub)).Format("2006-01-02 15:04 MST")}, Secret: sec})
	case "test":
		ep := sub.Endpoint(r.PostFormValue("endpoint"))
		if ep == nil || ep.Channel != "webhook" {
			back()
			return
		}
		note(s.testEvent(ctx, sub, ep))
	case "delete":
		if err := s.d.EraseSubscriber(ctx, sub.ID); err != nil && !errors.Is(err, subscribers.ErrNotFound) {
			s.check(w, r, lang, err)
			return
		}
		s.logger.Info("portal: subscription deleted by its owner", "subscriber", sub.ID)
		s.endSession(ctx, w, key)
		s.message(w, r, http.StatusOK, lang, "manage.deleted_title", "manage.deleted_text", nil)
	case "logout":
		s.endSession(ctx, w, key)
		http.Redirect(w, r, "/manage?lang="+lang, http.StatusSeeOther)
	default:
		s.message(w, r, http.StatusNotFound, lang, "error.not_found_title", "", nil)
	}
}

func (s *Server) location(sub *subscribers.Subscriber) *time.Location {
	loc, err := subscribers.LoadLocation(sub.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// newEndpointID returns an endpoint id of sub not yet used, from base.
func newEndpointID(sub *subscribers.Subscriber, base string) string {
	if sub.Endpoint(base) == nil {
		return base
	}
	for i := 2; ; i++ {
		if id := base + strconv.Itoa(i); sub.Endpoint(id) == nil {
			return id
		}
	}
}

// newWebhookSecret returns a Standard Webhooks secret: "whsec_" and the
// base64 of 32 random bytes.
func newWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// testEvent sends a signed "test" event to a webhook now, through the
// webhook channel (the SSRF guard and the signing of notifications), and
// returns the message telling its answer.
func (s *Server) testEvent(ctx context.Context, sub *subscribers.Subscriber, ep *subscribers.Endpoint) flash {
	now := s.cfg.Now().UTC()
	body, _ := json.Marshal(map[string]any{
		"type": "test", "timestamp": now.Format(time.RFC3339),
		"data": map[string]any{"subscriber_id": sub.ID, "endpoint_id": ep.ID, "message": "Test event from Herald: your webhook endpoint works."},
	})
	id := "test_" + strings.ToLower(newID(""))
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	receipt, err := s.deps.Webhook.Send(ctx, channels.Endpoint{SubscriberID: sub.ID, ID: ep.ID, Address: ep.URL, Secret: ep.SigningSecret(now), Name: sub.Name},
		&channels.Message{ID: id, Kind: "test", Body: body, ContentType: "application/json", Attempt: 1})
	if receipt.Status != 0 {
		return flash{Key: "endpoint.test_status", Args: []string{"status", strconv.Itoa(receipt.Status)}, Error: err != nil}
	}
	reason := "no answer"
	if err != nil {
		reason = err.Error()
	}
	return flash{Key: "endpoint.test_failed", Args: []string{"reason", reason}, Error: true}
}
