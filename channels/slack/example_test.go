package slack_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/slack-go/slack/slacktest"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/secret"
)

// An incoming webhook: one message per update.
func Example_webhook() {
	// A partner's incoming webhook (Slack runs them on hooks.slack.com;
	// this one runs on 127.0.0.1, which Herald refuses by default).
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("posted %s\n", body)
		_, _ = io.WriteString(w, "ok")
	}))
	defer hook.Close()
	client, _ := egress.NewClient(egress.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})

	ch, err := slack.New(slack.Config{HTTPClient: client, WebhookHosts: []string{"127.0.0.1"}, AllowHTTP: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.CloseIdleConnections()
	r, err := ch.Send(context.Background(), channels.Endpoint{Address: hook.URL + "/services/T0123/B0456/abcdefghijklmnopqrstuvwx"}, &channels.Message{
		ID:   "dlv_5c1f0e9a7b3d4e21",
		Body: []byte(`{"text":"[Resolved] Duplicate charges on Nexo terminals"}`),
	})
	if err != nil {
		fmt.Println("failed, permanent:", channels.Classify(err).Permanent, err)
		return
	}
	fmt.Println("status", r.Status)
	// Output:
	// posted {"text":"[Resolved] Duplicate charges on Nexo terminals"}
	// status 200
}

// Herald's bot: one living message per incident and channel.
func Example_bot() {
	// slacktest stands for Slack's Web API; it has no chat.update.
	api := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"ok":true}`)
		})
	})
	api.Start()
	defer api.Stop()

	ch, err := slack.New(slack.Config{
		BotToken: secret.Value("xoxb-example"),
		APIURL:   api.GetAPIURL(),
		// In production: slack.NewKVThreads over the slack_threads bucket.
		Threads:            slack.NewMemoryThreads(),
		PerChannelInterval: -1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ep := channels.Endpoint{Address: "C0123ABCD"}
	for i, status := range []string{"investigating", "monitoring", "resolved"} {
		r, err := ch.Send(context.Background(), ep, &channels.Message{
			ID:         fmt.Sprintf("dlv_TSR-1610_%d", i+1),
			IncidentID: "TSR-1610",
			Sequence:   int64(i + 1),
			Status:     status,
			Closed:     status == "resolved",
			Body:       []byte(`{"text":"TSR-1610 is ` + status + `"}`),
			Parent:     []byte(`{"text":"TSR-1610: ` + status + `"}`),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.Detail)
	}
	// Output:
	// slack channel C0123ABCD: parent posted
	// slack channel C0123ABCD: reply posted, parent updated
	// slack channel C0123ABCD: reply posted, parent updated
}
