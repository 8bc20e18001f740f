package sms_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/secret"
)

func Example() {
	// A stand-in for Twilio's Messages API.
	twilio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		fmt.Printf("Twilio: %s to %s: %s\n", r.URL.Path, r.PostForm.Get("To"), r.PostForm.Get("Body"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"sid":"SM5c1f0e9a7b3d4e215c1f0e9a7b3d4e21","status":"queued"}`)
	}))
	defer twilio.Close()

	ch, err := sms.New(sms.Config{
		AccountSID:     "AC0123456789abcdef0123456789abcdef",
		AuthToken:      secret.Value("f3a9c1e07b5d4e2a9c8b7a6f5e4d3c2b"),
		From:           "+33757000000",
		StatusCallback: sms.CallbackURL("https://status.example.com"),
		BaseURL:        twilio.URL, // https://api.twilio.com in production
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.CloseIdleConnections()

	receipt, err := ch.Send(context.Background(),
		channels.Endpoint{SubscriberID: "m_1042", ID: "e2", Address: "+33 6 12 34 56 78"},
		&channels.Message{ID: "dlv_5c1f0e9a7b3d4e21", Text: "[Résolu] Paiements Oney : le service est rétabli."})
	if err != nil {
		c := channels.Classify(err)
		fmt.Println("failed, permanent:", c.Permanent, "action:", c.Action, err)
		return
	}
	fmt.Println(receipt.ProviderID, receipt.Detail)
	// Output:
	// Twilio: /2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json to +33612345678: [Résolu] Paiements Oney : le service est rétabli.
	// SM5c1f0e9a7b3d4e215c1f0e9a7b3d4e21 queued
}

func ExampleCallbackHandler() {
	v, err := sms.NewCallbackVerifier(sms.Config{
		AccountSID:     "AC0123456789abcdef0123456789abcdef",
		AuthToken:      secret.Value("f3a9c1e07b5d4e2a9c8b7a6f5e4d3c2b"),
		StatusCallback: sms.CallbackURL("https://status.example.com"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	record := func(_ context.Context, cb sms.Callback) error {
		fmt.Println("receipt", cb.DeliveryID, cb.Status, cb.ErrorCode)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+sms.CallbackPath, sms.CallbackHandler(v, record))

	// A request without Twilio's signature is refused.
	body := url.Values{"MessageSid": {"SM5c1f0e9a7b3d4e215c1f0e9a7b3d4e21"}, "MessageStatus": {"delivered"}}.Encode()
	req := httptest.NewRequest(http.MethodPost, sms.CallbackPath+"?delivery=dlv_5c1f0e9a7b3d4e21", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	fmt.Println(w.Code)
	// Output:
	// 403
}
