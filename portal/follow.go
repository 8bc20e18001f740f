package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

type followData struct {
	Incident, Title string
	Locales         []option
}

func (s *Server) followData(snap *dispatcher.Snapshot, locale string) followData {
	d := followData{Incident: snap.IncidentID, Title: snap.Title}
	for _, l := range Locales {
		d.Locales = append(d.Locales, option{l, langNames[l], l == locale})
	}
	return d
}

// followable returns the incident's snapshot when it can be followed, else
// answers the page saying why.
func (s *Server) followable(w http.ResponseWriter, r *http.Request, lang string) (*dispatcher.Snapshot, bool) {
	id := r.PathValue("incident")
	if !incident.ValidIncidentID(id) {
		s.message(w, r, http.StatusNotFound, lang, "error.not_found_title", "follow.unknown", []string{"incident", "?"})
		return nil, false
	}
	snap, err := s.d.Snapshot(r.Context(), id)
	switch {
	case err != nil:
		return nil, s.check(w, r, lang, err)
	case snap == nil:
		s.message(w, r, http.StatusNotFound, lang, "error.not_found_title", "follow.unknown", []string{"incident", id})
		return nil, false
	case snap.Status.Closed():
		s.message(w, r, http.StatusGone, lang, "follow.title", "follow.closed", []string{"incident", id})
		return nil, false
	}
	return snap, true
}

func (s *Server) followPage(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	snap, ok := s.followable(w, r, lang)
	if !ok {
		return
	}
	pg := s.newPage(w, r, lang, "follow.title", "incident", snap.IncidentID)
	pg.Data = s.followData(snap, lang)
	s.render(w, http.StatusOK, "follow", pg)
}

// follow creates a follower of the incident, pending until its address is
// confirmed.
func (s *Server) follow(w http.ResponseWriter, r *http.Request) {
	lang := pageLocale(r, "")
	if !s.checkCSRF(w, r, lang) || !s.limitIP(w, r, lang) {
		return
	}
	snap, ok := s.followable(w, r, lang)
	if !ok {
		return
	}
	ctx := r.Context()
	locale := matchLocale(r.PostFormValue("locale"), lang)
	sub := &subscribers.Subscriber{ID: newID("f_"), Locale: locale, Follow: &subscribers.Follow{IncidentID: snap.IncidentID},
		Endpoints: []subscribers.Endpoint{{ID: mailEndpoint, Channel: "email", Address: strings.TrimSpace(r.PostFormValue("email")),
			Pending: &subscribers.Pending{Since: s.cfg.Now().UTC().Truncate(time.Second)}}}}
	if err := s.cfg.Rules.Normalize(sub); err != nil {
		pg := s.newPage(w, r, lang, "follow.title", "incident", snap.IncidentID)
		pg.Errors = fieldMessages(pg, err)
		pg.Data = s.followData(snap, locale)
		s.render(w, http.StatusBadRequest, "follow", pg)
		return
	}
	ep := sub.Endpoint(mailEndpoint)
	if !s.check(w, r, lang, s.limitAddress(ctx, "email", ep.Address)) {
		return
	}
	if _, err := s.store.Put(ctx, sub); err != nil {
		s.check(w, r, lang, err)
		return
	}
	if err := s.sendConfirm(ctx, sub, ep, dispatcher.KindFollowConfirm); err != nil {
		s.check(w, r, lang, err)
		return
	}
	s.message(w, r, http.StatusOK, lang, "subscribe.sent_title", "follow.sent_text", nil)
}

// followConsumer is the durable consumer through which the portal sees
// incident updates, to end followings.
const followConsumer = "portal-follows"

// Run ends the followings of incidents as they are resolved, and erases
// followers FollowRetention after that, until ctx ends. Several processes
// may run it: they share one durable consumer.
func (s *Server) Run(ctx context.Context) error {
	for !s.d.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	js := s.deps.JetStream
	cons, err := js.CreateOrUpdateConsumer(ctx, dispatcher.StreamIncidents, jetstream.ConsumerConfig{
		Durable: followConsumer, Description: "Herald portal: ends followings of resolved incidents",
		DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		FilterSubject: dispatcher.AllIncidentsFilter,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("portal: follow consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := s.endFollows(ctx, m.Data()); err != nil {
			s.logger.Warn("portal: ending followings", "err", err)
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		_ = m.Ack()
	})
	if err != nil {
		return fmt.Errorf("portal: follow consumer: %w", err)
	}
	defer cc.Stop()
	s.sweepFollowers(ctx)
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.sweepFollowers(ctx)
		}
	}
}

// endFollows ends the followings of the update's incident when it closes
// it: the followers get this update and nothing later.
func (s *Server) endFollows(ctx context.Context, data []byte) error {
	ev, err := incident.Decode(data, 0)
	if err != nil || !ev.Status.Closed() {
		return nil // bad events are the fan-out's business
	}
	at := s.cfg.Now().UTC().Truncate(time.Second)
	for id, ended := range s.d.Index().Followers(ev.IncidentID) {
		if ended {
			continue
		}
		_, _, err := s.store.Update(ctx, id, func(sub *subscribers.Subscriber) (bool, error) {
			if sub.Follow == nil || sub.Follow.IncidentID != ev.IncidentID || (sub.Follow.EndedAfter != 0 && sub.Follow.EndedAfter <= ev.Sequence) {
				return false, nil
			}
			sub.Follow.EndedAfter, sub.Follow.EndedAt = ev.Sequence, &at
			return true, nil
		})
		if err != nil && !errors.Is(err, subscribers.ErrNotFound) {
			return err
		}
		s.logger.Info("portal: following ended", "subscriber", id, "incident", ev.IncidentID, "sequence", ev.Sequence)
	}
	return nil
}

// sweepFollowers erases the followers whose following ended more than
// FollowRetention ago.
func (s *Server) sweepFollowers(ctx context.Context) {
	for _, id := range s.d.Index().EndedFollowers() {
		sub, _, err := s.store.Get(ctx, id)
		if err != nil || sub.Follow == nil || sub.Follow.EndedAt == nil {
			continue
		}
		if s.cfg.Now().Sub(*sub.Follow.EndedAt) < s.cfg.FollowRetention {
			continue
		}
		if err := s.d.EraseSubscriber(ctx, id); err == nil {
			s.logger.Info("portal: follower erased", "subscriber", id, "incident", sub.Follow.IncidentID)
		}
	}
}
