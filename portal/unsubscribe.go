package portal

import (
	"errors"
	"net/http"
	"strings"

	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
)

// openUnsubscribe opens an unsubscribe link and finds its endpoint, which
// must still have the address the link was sent to.
func (s *Server) openUnsubscribe(r *http.Request) (links.Claims, *subscribers.Subscriber, error) {
	c, err := s.links.Open(r.PathValue("token"), links.Unsubscribe)
	if err != nil {
		return c, nil, err
	}
	sub, _, err := s.store.Get(r.Context(), c.SubscriberID)
	if errors.Is(err, subscribers.ErrNotFound) {
		return c, nil, errGone
	}
	if err != nil {
		return c, nil, err
	}
	if ep := sub.Endpoint(c.EndpointID); ep == nil || !c.For(ep.Target()) {
		return c, nil, errGone
	}
	return c, sub, nil
}

// unsubscribePage asks to confirm: a link scanner's GET unsubscribes
// nobody.
func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	_, sub, err := s.openUnsubscribe(r)
	lang := pageLocale(r, "")
	if err != nil {
		s.pageForLink(w, r, lang, err)
		return
	}
	lang = pageLocale(r, sub.Locale)
	pg := s.newPage(w, r, lang, "unsubscribe.title")
	pg.Data = actionData{Text: pg.T("unsubscribe.text"), Action: r.URL.Path, Button: pg.T("unsubscribe.submit"),
		Hidden: map[string]string{"List-Unsubscribe": "One-Click"}}
	s.render(w, http.StatusOK, "action", pg)
}

// unsubscribe disables the endpoint of the link. It needs no login and no
// form token (RFC 8058: mailbox providers post "List-Unsubscribe=One-Click"
// from their servers; the sealed, address-bound token is the
// authorisation), and it is idempotent.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	c, sub, err := s.openUnsubscribe(r)
	lang := pageLocale(r, "")
	if err != nil {
		if !strings.Contains(r.Header.Get("Accept"), "text/html") && !errors.Is(err, links.ErrInvalid) && !errors.Is(err, links.ErrExpired) && !errors.Is(err, errGone) {
			w.Header().Set("Retry-After", "60")
		}
		s.pageForLink(w, r, lang, err)
		return
	}
	lang = pageLocale(r, sub.Locale)
	if _, _, err := s.store.DisableEndpoint(r.Context(), c.SubscriberID, c.EndpointID, "unsubscribed", s.cfg.Now().UTC()); err != nil && !errors.Is(err, subscribers.ErrNotFound) {
		s.check(w, r, lang, err)
		return
	}
	s.logger.Info("endpoint unsubscribed", "subscriber", c.SubscriberID, "endpoint", c.EndpointID)
	s.message(w, r, http.StatusOK, lang, "unsubscribe.done_title", "unsubscribe.done_text", nil)
}
