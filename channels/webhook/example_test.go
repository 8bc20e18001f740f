package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/secret"
)

func Example() {
	const signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

	// A merchant's receiver, verifying signatures with the Standard
	// Webhooks library.
	wh, _ := standardwebhooks.NewWebhook(signingSecret)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Printf("received %s: %s\n", r.Header.Get("webhook-id"), body)
	}))
	defer receiver.Close()

	ch, err := webhook.New(webhook.Config{
		// The receiver runs on plain HTTP on 127.0.0.1, which Herald
		// refuses by default.
		AllowHTTP: true,
		Allow:     []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.CloseIdleConnections()

	receipt, err := ch.Send(context.Background(), channels.Endpoint{
		Address: receiver.URL + "/hooks/status",
		Secret:  secret.Value(signingSecret),
	}, &channels.Message{
		ID:   "dlv_5c1f0e9a7b3d4e21",
		Body: []byte(`{"type":"incident.update","data":{"incident_id":"TSR-1610","status":"resolved"}}`),
	})
	if err != nil {
		c := channels.Classify(err)
		fmt.Println("failed, permanent:", c.Permanent, err)
		return
	}
	fmt.Println("status", receipt.Status)
	// Output:
	// received dlv_5c1f0e9a7b3d4e21: {"type":"incident.update","data":{"incident_id":"TSR-1610","status":"resolved"}}
	// status 200
}
