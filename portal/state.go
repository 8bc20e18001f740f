package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// session is a merchant's visit to the preference centre, kept in the
// sessions bucket under a digest of its cookie.
type session struct {
	SubscriberID string `json:"sub"`
	// EndpointID is the address the visit was opened from.
	EndpointID string `json:"ep"`
	// Flash holds the messages of the last action, shown once.
	Flash []flash `json:"flash,omitempty"`
}

// flash is one message: a catalog key and its arguments; Secret, when set,
// is a webhook secret shown once.
type flash struct {
	Key    string   `json:"key"`
	Args   []string `json:"args,omitempty"`
	Error  bool     `json:"error,omitempty"`
	Secret string   `json:"secret,omitempty"`
	// Text is a message already in the page's language (a validation
	// problem), shown as an error.
	Text string `json:"text,omitempty"`
}

const sessionCookie = "herald_session"

// startSession opens a session for a subscriber and sets its cookie.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, sess *session) error {
	id := randomToken(32)
	data, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	if _, err := s.sessions.Put(ctx, "s"+digestHex(id), data); err != nil {
		return fmt.Errorf("portal: storing the session: %w", err)
	}
	s.setCookie(w, sessionCookie, id, 0)
	return nil
}

// loadSession returns the request's session and its key, or nil.
func (s *Server) loadSession(ctx context.Context, r *http.Request) (*session, string, error) {
	c, err := r.Cookie(s.cookieName(sessionCookie))
	if err != nil || len(c.Value) < 32 {
		return nil, "", nil
	}
	key := "s" + digestHex(c.Value)
	e, err := s.sessions.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("portal: reading the session: %w", err)
	}
	var sess session
	if err := json.Unmarshal(e.Value(), &sess); err != nil {
		return nil, "", nil
	}
	return &sess, key, nil
}

// saveSession stores a changed session (its lifetime starts again).
func (s *Server) saveSession(ctx context.Context, key string, sess *session) error {
	data, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	_, err = s.sessions.Put(ctx, key, data)
	return err
}

// endSession deletes the session and its cookie.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, key string) {
	if key != "" {
		_ = s.sessions.Delete(ctx, key)
	}
	s.setCookie(w, sessionCookie, "", -1)
}

// codeRecord is a confirmation code waiting to be typed.
type codeRecord struct {
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires"`
	Tries   int       `json:"tries"`
}

func codeHash(key, code string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

// newCode draws a 6-digit code and stores it under key.
func (s *Server) newCode(ctx context.Context, key string) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	rec := codeRecord{Hash: codeHash(key, code), Expires: s.cfg.Now().Add(s.cfg.CodeTTL)}
	data, _ := json.Marshal(rec)
	if _, err := s.codes.Put(ctx, key, data); err != nil {
		return "", fmt.Errorf("portal: storing the code: %w", err)
	}
	return code, nil
}

// Outcomes of a typed code.
var (
	errCodeWrong     = errors.New("wrong code")
	errCodeExpired   = errors.New("code expired")
	errCodeExhausted = errors.New("too many wrong codes")
)

// checkCode checks a typed code against the one stored under key: nil when
// right (the code is then spent), errCodeWrong with the tries left,
// errCodeExpired or errCodeExhausted.
func (s *Server) checkCode(ctx context.Context, key, code string) (left int, err error) {
	for range 8 {
		e, err := s.codes.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, errCodeExpired
		}
		if err != nil {
			return 0, err
		}
		var rec codeRecord
		if json.Unmarshal(e.Value(), &rec) != nil {
			return 0, errCodeExpired
		}
		switch {
		case !s.cfg.Now().Before(rec.Expires):
			_ = s.codes.Delete(ctx, key)
			return 0, errCodeExpired
		case rec.Tries >= s.cfg.CodeTries:
			return 0, errCodeExhausted
		}
		if subtle.ConstantTimeCompare([]byte(codeHash(key, code)), []byte(rec.Hash)) == 1 {
			if err := s.codes.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
				continue // typed twice at once: look again
			}
			return 0, nil
		}
		rec.Tries++
		data, _ := json.Marshal(rec)
		if _, err := s.codes.Update(ctx, key, data, e.Revision()); err != nil {
			continue
		}
		if rec.Tries >= s.cfg.CodeTries {
			return 0, errCodeExhausted
		}
		return s.cfg.CodeTries - rec.Tries, errCodeWrong
	}
	return 0, errors.New("portal: the code changed too often")
}
