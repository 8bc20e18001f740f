package dispatcher

import (
	"bytes"
	"errors"
	"testing"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// TestEraseSubscriberErasesDeadLetters: deleting a subscriber erases the
// dead letters that hold its addresses (a confirmation refused for good,
// a notice to an address it no longer lists) and keeps the others: another
// subscriber's notice, and its own notification jobs, which hold ids only.
func TestEraseSubscriberErasesDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	gone := emailSubscriber("m_gone", "fr-FR", "Europe/Paris", "Dupont", "ops@dupont.example")
	stay := emailSubscriber("m_stay", "fr-FR", "Europe/Paris", "Martin", "ops@martin.example")
	b.putSubscriber(gone)
	b.putSubscriber(stay)
	notice := func(sub, address string) []byte {
		j := &Job{ID: DeliveryID("confirm:1", sub, "mail"), Kind: KindConfirm, EventID: "confirm:1", SubscriberID: sub, EndpointID: "mail",
			Channel: channels.Email, To: &Direct{Address: address, Locale: "fr", Link: "https://herald.example/confirm/x"}}
		data, err := encodeJob(j)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	update := &Job{ID: DeliveryID("INC-1:1", "m_gone", "mail"), Kind: KindUpdate, EventID: "INC-1:1", SubscriberID: "m_gone", EndpointID: "mail", Channel: channels.Email}
	updateData, err := encodeJob(update)
	if err != nil {
		t.Fatal(err)
	}
	letters := [][]byte{
		notice("m_gone", "ops@dupont.example"),     // erased: its address
		notice("m_gone", "pending@dupont.example"), // erased: a notice addressed to it directly
		notice("m_stay", "ops@martin.example"),     // kept
		updateData,                                 // kept: ids only
	}
	for _, data := range letters {
		if err := b.d.dlq.add(b.ctx, "deliveries.email", data, "ref", "refused: 550", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.d.EraseSubscriber(b.ctx, "m_gone"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.d.store.Get(b.ctx, "m_gone"); !errors.Is(err, subscribers.ErrNotFound) {
		t.Errorf("the subscriber is still there: %v", err)
	}
	left, err := b.d.dlq.List(b.ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("%d dead letters left, want 2: %+v", len(left), left)
	}
	for _, dl := range left {
		if bytes.Contains(dl.Data, []byte("dupont.example")) {
			t.Errorf("dead letter %d still names the deleted subscriber's address: %s", dl.Seq, dl.Data)
		}
	}
	if !bytes.Contains(left[0].Data, []byte("ops@martin.example")) || !bytes.Contains(left[1].Data, []byte(`"m_gone"`)) {
		t.Errorf("the wrong dead letters were kept: %s / %s", left[0].Data, left[1].Data)
	}
	if err := b.d.EraseSubscriber(b.ctx, "m_gone"); !errors.Is(err, subscribers.ErrNotFound) {
		t.Errorf("erasing it again: %v, want ErrNotFound", err)
	}
}

// TestEraseSubscriberKeepsOtherSubscribersNotices: the notices erased are
// those addressed to the deleted subscriber; another subscriber's notice
// to the same address, or to an address containing it, is kept.
func TestEraseSubscriberKeepsOtherSubscribersNotices(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(emailSubscriber("m_gone", "fr-FR", "Europe/Paris", "Dupont", "ops@dupont.example"))
	for _, n := range []struct{ sub, address string }{
		{"m_gone", "ops@dupont.example"},
		{"m_other", "ops@dupont.example"},
		{"m_other", "devops@dupont.example"},
	} {
		j := &Job{ID: DeliveryID("confirm:1", n.sub, "mail"), Kind: KindConfirm, EventID: "confirm:1", SubscriberID: n.sub, EndpointID: "mail",
			Channel: channels.Email, To: &Direct{Address: n.address, Locale: "fr", Link: "https://herald.example/confirm/x"}}
		data, err := encodeJob(j)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.d.dlq.add(b.ctx, "deliveries.email", data, "ref", "refused: 550", 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.d.EraseSubscriber(b.ctx, "m_gone"); err != nil {
		t.Fatal(err)
	}
	left, err := b.d.dlq.List(b.ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("%d dead letters left, want the other subscriber's 2: %+v", len(left), left)
	}
	for _, dl := range left {
		if !bytes.Contains(dl.Data, []byte(`"m_other"`)) {
			t.Errorf("kept a dead letter of the deleted subscriber: %s", dl.Data)
		}
	}
}
