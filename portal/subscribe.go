package portal

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
)

// Endpoint ids of the addresses given on the subscribe form.
const (
	mailEndpoint = "mail"
	smsEndpoint  = "sms"
)

type subscribeData struct {
	Email, Phone string
	Prefs        prefsArgs
}

type codeData struct {
	Text   string
	Ticket string
}

type actionData struct {
	Text, Action, Button string
	Hidden               map[string]string
}

func (s *Server) subscribePage(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	pg := s.newPage(w, r, lang, "subscribe.title")
	pg.Data = subscribeData{Prefs: s.prefsForm(pg, prefs{Locale: lang}, false)}
	s.render(w, http.StatusOK, "subscribe", pg)
}

// normalizePhone reads a phone number as the admin API does, and checks it
// may receive SMS.
func (s *Server) normalizePhone(raw string) (string, error) {
	rules := s.cfg.Rules
	var n string
	var err error
	if rules.Phone != nil {
		n, err = rules.Phone(raw)
	} else {
		n, err = subscribers.NormalizePhone(raw, rules.DefaultRegion)
	}
	if err != nil {
		return "", err
	}
	return n, rules.CheckSMSNumber(n)
}

// holds reports whether an address is already an endpoint of a
// subscriber (in any state).
func (s *Server) holders(ctx context.Context, channel, address string) []*subscribers.Subscriber {
	var out []*subscribers.Subscriber
	for _, id := range s.d.Index().Holders(channel, address) {
		sub, _, err := s.store.Get(ctx, id)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(sub.Endpoints, func(ep subscribers.Endpoint) bool {
			return ep.Channel == channel && strings.EqualFold(ep.Address, address)
		}) {
			out = append(out, sub)
		}
	}
	return out
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	p := readPrefs(r)
	if p.Locale == "" {
		p.Locale = lang
	}
	again := func(errs []string) {
		pg := s.newPage(w, r, lang, "subscribe.title")
		pg.Errors = errs
		pg.Data = subscribeData{Email: email, Phone: phone, Prefs: s.prefsForm(pg, p, false)}
		s.render(w, http.StatusBadRequest, "subscribe", pg)
	}
	pg := s.newPage(w, r, lang, "subscribe.title")
	if email == "" && phone == "" {
		again([]string{pg.T("subscribe.need_address")})
		return
	}
	now := s.cfg.Now().UTC().Truncate(1e9)
	sub := &subscribers.Subscriber{ID: newID("s_")}
	if email != "" {
		sub.Endpoints = append(sub.Endpoints, subscribers.Endpoint{ID: mailEndpoint, Channel: "email", Address: email, Pending: &subscribers.Pending{Since: now}})
	}
	if phone != "" {
		n, err := s.normalizePhone(phone)
		if err != nil {
			again([]string{phoneError(pg, err)})
			return
		}
		sub.Endpoints = append(sub.Endpoints, subscribers.Endpoint{ID: smsEndpoint, Channel: "sms", Address: n, Pending: &subscribers.Pending{Since: now}})
	}
	p.apply(sub)
	if err := s.cfg.Rules.Normalize(sub); err != nil {
		again(fieldMessages(pg, err))
		return
	}
	// Every address gets its message whether it is known or not, and the
	// answer is the same: nothing tells a visitor who is subscribed.
	var known []*subscribers.Subscriber
	var ep *subscribers.Endpoint
	if ep = sub.Endpoint(mailEndpoint); ep != nil {
		if !s.check(w, r, lang, s.limitAddress(ctx, "email", ep.Address)) {
			return
		}
		if known = s.holders(ctx, "email", ep.Address); len(known) > 0 {
			// Already subscribed: a link to the preferences instead, and
			// no second subscriber for the same address.
			sub.Endpoints = slices.DeleteFunc(sub.Endpoints, func(e subscribers.Endpoint) bool { return e.ID == mailEndpoint })
		}
	}
	smsEp := sub.Endpoint(smsEndpoint)
	if smsEp != nil {
		if !s.check(w, r, lang, s.limitAddress(ctx, "sms", smsEp.Address)) || !s.smsAllowed(w, r, lang, sub.ID) {
			return
		}
	}
	if len(sub.Endpoints) > 0 {
		if _, err := s.store.Put(ctx, sub); err != nil {
			s.check(w, r, lang, err)
			return
		}
	}
	for _, k := range known {
		if err := s.sendLogin(ctx, k, "email", email); err != nil {
			s.check(w, r, lang, err)
			return
		}
	}
	if ep := sub.Endpoint(mailEndpoint); ep != nil {
		if err := s.sendConfirm(ctx, sub, ep, dispatcher.KindConfirm); err != nil {
			s.check(w, r, lang, err)
			return
		}
	}
	pg = s.newPage(w, r, lang, "subscribe.sent_title")
	var texts []string
	if email != "" {
		texts = append(texts, pg.T("subscribe.sent_email"))
	}
	if smsEp = sub.Endpoint(smsEndpoint); smsEp != nil {
		ticket, err := s.sendCode(ctx, sub, smsEp)
		if err != nil {
			s.check(w, r, lang, err)
			return
		}
		pg.Notes = texts
		pg.Data = codeData{Text: pg.T("subscribe.sent_phone"), Ticket: ticket}
		s.render(w, http.StatusOK, "code", pg)
		return
	}
	pg.Data = messageData{Text: strings.Join(texts, " ")}
	s.render(w, http.StatusOK, "message", pg)
}

// smsAllowed answers the SMS-cap page and reports false when no SMS can be
// sent now.
func (s *Server) smsAllowed(w http.ResponseWriter, r *http.Request, lang, subscriberID string) bool {
	capper := s.d.SMSCap()
	if capper == nil {
		return true
	}
	scope, err := capper.Check(r.Context(), subscriberID)
	if err != nil {
		return s.check(w, r, lang, err)
	}
	if scope != "" {
		s.smsCapPage(w, r, lang, scope)
		return false
	}
	return true
}

// smsScope returns the daily cap an SMS to sub (nil: nobody known) would
// go past, or "".
func (s *Server) smsScope(ctx context.Context, sub *subscribers.Subscriber) (string, error) {
	capper := s.d.SMSCap()
	if capper == nil {
		return "", nil
	}
	id := ""
	if sub != nil {
		id = sub.ID
	}
	return capper.Check(ctx, id)
}

// smsCapPage answers the page of an SMS refused by a daily cap.
func (s *Server) smsCapPage(w http.ResponseWriter, r *http.Request, lang, scope string) {
	s.logger.Warn("portal: SMS refused, daily cap reached", "cap", scope)
	s.message(w, r, http.StatusServiceUnavailable, lang, "error.sms_cap_title", "error.sms_cap_text", nil)
}

// sendConfirm mails the confirmation link of a pending email endpoint.
func (s *Server) sendConfirm(ctx context.Context, sub *subscribers.Subscriber, ep *subscribers.Endpoint, kind string) error {
	tok := s.links.Seal(links.Confirm, sub.ID, ep.ID, ep.Address, s.cfg.ConfirmTTL)
	n := dispatcher.Direct{Address: ep.Address, Locale: sub.Locale, Timezone: sub.Timezone, Name: sub.Name,
		Link: s.links.URL(links.Confirm, tok), Expires: s.cfg.Now().Add(s.cfg.ConfirmTTL)}
	if sub.Follow != nil {
		n.IncidentID = sub.Follow.IncidentID
	}
	_, err := s.d.SendNotice(ctx, kind, sub.ID, ep.ID, n)
	return err
}

// sendLogin mails (or texts) a single-use link to the preference centre of
// sub, to address only.
func (s *Server) sendLogin(ctx context.Context, sub *subscribers.Subscriber, channel, address string) error {
	var ep *subscribers.Endpoint
	for i := range sub.Endpoints {
		if e := &sub.Endpoints[i]; e.Channel == channel && strings.EqualFold(e.Address, address) {
			ep = e
			break
		}
	}
	if ep == nil {
		return nil
	}
	tok := s.links.Seal(links.Login, sub.ID, ep.ID, ep.Address, s.cfg.LoginTTL)
	_, err := s.d.SendNotice(ctx, dispatcher.KindManageLink, sub.ID, ep.ID, dispatcher.Direct{
		Address: ep.Address, Locale: sub.Locale, Timezone: sub.Timezone, Name: sub.Name,
		Link: s.links.URL(links.Login, tok), Expires: s.cfg.Now().Add(s.cfg.LoginTTL)})
	return err
}

// sendCode texts a confirmation code for an SMS endpoint and returns the
// ticket of the form where it is typed.
func (s *Server) sendCode(ctx context.Context, sub *subscribers.Subscriber, ep *subscribers.Endpoint) (string, error) {
	code, err := s.newCode(ctx, codeKey(sub.ID, ep.ID))
	if err != nil {
		return "", err
	}
	if _, err := s.d.SendNotice(ctx, dispatcher.KindCode, sub.ID, ep.ID, dispatcher.Direct{
		Address: ep.Address, Locale: sub.Locale, Timezone: sub.Timezone, Name: sub.Name,
		Code: code, Expires: s.cfg.Now().Add(s.cfg.CodeTTL)}); err != nil {
		return "", err
	}
	return s.links.Seal(links.Code, sub.ID, ep.ID, ep.Address, s.cfg.CodeTTL+s.cfg.SessionTTL), nil
}

func codeKey(subscriberID, endpointID string) string { return "c." + subscriberID + "." + endpointID }

// codePage shows the form where a code is typed again, from the ticket of
// the form (the language switch of the code page leads here).
func (s *Server) codePage(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	ticket := r.URL.Query().Get("ticket")
	if _, err := s.links.Open(ticket, links.Code); err != nil {
		s.linkError(w, r, lang, err)
		return
	}
	pg := s.newPage(w, r, lang, "code.title")
	pg.Data = codeData{Text: pg.T("subscribe.sent_phone"), Ticket: ticket}
	s.render(w, http.StatusOK, "code", pg)
}

// confirmCode checks the code typed for a phone number.
func (s *Server) confirmCode(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	ctx := r.Context()
	ticket := r.PostFormValue("ticket")
	c, err := s.links.Open(ticket, links.Code)
	if err != nil {
		s.linkError(w, r, lang, err)
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	left, err := s.checkCode(ctx, codeKey(c.SubscriberID, c.EndpointID), code)
	switch {
	case errors.Is(err, errCodeWrong):
		pg := s.newPage(w, r, lang, "code.title")
		pg.Errors = []string{pg.T("code.wrong", "left", itoa(left))}
		pg.Data = codeData{Ticket: ticket}
		s.render(w, http.StatusBadRequest, "code", pg)
		return
	case errors.Is(err, errCodeExpired):
		s.message(w, r, http.StatusGone, lang, "code.title", "code.expired", nil)
		return
	case errors.Is(err, errCodeExhausted):
		s.message(w, r, http.StatusGone, lang, "code.title", "code.exhausted", nil)
		return
	case err != nil:
		s.check(w, r, lang, err)
		return
	}
	sub, err := s.activate(ctx, c)
	if err != nil {
		s.pageForActivation(w, r, lang, err)
		return
	}
	if err := s.startSession(ctx, w, &session{SubscriberID: sub.ID, EndpointID: c.EndpointID,
		Flash: []flash{{Key: "confirm.done_text", Args: []string{"address", sub.Endpoint(c.EndpointID).Address}}}}); err != nil {
		s.check(w, r, lang, err)
		return
	}
	http.Redirect(w, r, "/manage?lang="+lang, http.StatusSeeOther)
}

// activate clears the pending state of the endpoint a link or code names,
// when it still holds the address the link was sent to.
func (s *Server) activate(ctx context.Context, c links.Claims) (*subscribers.Subscriber, error) {
	sub, _, err := s.store.Update(ctx, c.SubscriberID, func(sub *subscribers.Subscriber) (bool, error) {
		ep := sub.Endpoint(c.EndpointID)
		if ep == nil || !c.For(ep.Target()) {
			return false, errGone
		}
		if ep.Pending == nil {
			return false, nil
		}
		ep.Pending = nil
		return true, nil
	})
	if errors.Is(err, subscribers.ErrNotFound) {
		return nil, errGone
	}
	return sub, err
}

func (s *Server) pageForActivation(w http.ResponseWriter, r *http.Request, lang string, err error) {
	if errors.Is(err, errGone) {
		s.linkError(w, r, lang, err)
		return
	}
	s.check(w, r, lang, err)
}

// openConfirm opens a confirmation link and finds its endpoint.
func (s *Server) openConfirm(r *http.Request) (links.Claims, *subscribers.Subscriber, error) {
	tok := r.PathValue("token")
	c, err := s.links.Open(tok, links.Confirm)
	if err != nil {
		return c, nil, err
	}
	if used, err := s.wasUsed(r.Context(), tok); err != nil {
		return c, nil, err
	} else if used {
		return c, nil, errUsed
	}
	sub, _, err := s.store.Get(r.Context(), c.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		return c, nil, errGone
	}
	if err != nil {
		return c, nil, err
	}
	ep := sub.Endpoint(c.EndpointID)
	if ep == nil || !c.For(ep.Target()) {
		return c, nil, errGone
	}
	return c, sub, nil
}

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	c, sub, err := s.openConfirm(r)
	lang := pageLocale(r, "")
	if sub != nil {
		lang = pageLocale(r, sub.Locale)
	}
	if err != nil {
		s.pageForLink(w, r, lang, err)
		return
	}
	pg := s.newPage(w, r, lang, "confirm.title")
	text := pg.T("confirm.text", "address", sub.Endpoint(c.EndpointID).Address)
	if sub.Follow != nil {
		text = pg.T("confirm.follow_text", "address", sub.Endpoint(c.EndpointID).Address, "incident", sub.Follow.IncidentID)
	}
	pg.Data = actionData{Text: text, Action: r.URL.Path, Button: pg.T("confirm.submit")}
	s.render(w, http.StatusOK, "action", pg)
}

// pageForLink answers the page of a link error or of trouble.
func (s *Server) pageForLink(w http.ResponseWriter, r *http.Request, lang string, err error) {
	if errors.Is(err, links.ErrInvalid) || errors.Is(err, links.ErrExpired) || errors.Is(err, errUsed) || errors.Is(err, errGone) {
		s.linkError(w, r, lang, err)
		return
	}
	s.check(w, r, lang, err)
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	c, sub, err := s.openConfirm(r)
	if err != nil {
		s.pageForLink(w, r, lang, err)
		return
	}
	ctx := r.Context()
	if first, err := s.markUsed(ctx, r.PathValue("token")); err != nil {
		s.check(w, r, lang, err)
		return
	} else if !first {
		s.linkError(w, r, lang, errUsed)
		return
	}
	if sub, err = s.activate(ctx, c); err != nil {
		s.pageForActivation(w, r, lang, err)
		return
	}
	address := sub.Endpoint(c.EndpointID).Address
	s.logger.Info("portal: address confirmed", "subscriber", sub.ID, "endpoint", c.EndpointID)
	if sub.Follow != nil {
		s.message(w, r, http.StatusOK, lang, "confirm.done_title", "confirm.done_follow", []string{"incident", sub.Follow.IncidentID})
		return
	}
	if err := s.startSession(ctx, w, &session{SubscriberID: sub.ID, EndpointID: c.EndpointID,
		Flash: []flash{{Key: "confirm.done_text", Args: []string{"address", address}}}}); err != nil {
		s.check(w, r, lang, err)
		return
	}
	http.Redirect(w, r, "/manage?lang="+lang, http.StatusSeeOther)
}
