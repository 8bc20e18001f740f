package email_test

import (
	"context"
	"fmt"
	"log"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/secret"
)

func ExampleDKIM_DNSRecord() {
	d := email.DKIM{
		Domain:   "herald.example",
		Selector: "herald2025",
		PrivateKey: secret.Value(`-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICusn3alB8sGz7DOXxHyZC1QCpTVfSVE2eIHbxPNcwcd
-----END PRIVATE KEY-----
`),
	}
	name, value, err := d.DNSRecord()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s. IN TXT %q\n", name, value)
	// Output:
	// herald2025._domainkey.herald.example. IN TXT "v=DKIM1; k=ed25519; p=8uYN83f8WxpG8PYcBy68OeOOFPhS1nOURq1rAz74GTI="
}

func ExampleMessageID() {
	fmt.Println(email.MessageID("dlv_5c1f0e9a7b3d4e21", "herald.example"))
	fmt.Println(email.MessageID("dlv/1 2", "herald.example"))
	// Output:
	// dlv_5c1f0e9a7b3d4e21@herald.example
	// dlv%2F1%202@herald.example
}

func ExampleNew() {
	ch, err := email.New(email.Config{
		Host:       "smtp.herald.example",
		Username:   "herald",
		Password:   secret.Value("…"),
		From:       "Herald Status <status@herald.example>",
		ReplyTo:    "support@herald.example",
		ListID:     "Herald status notifications <status.herald.example>",
		FeedbackID: "herald",
		Pool:       8,
		Rate:       50,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.Send(context.Background(), channels.Endpoint{Address: "ops@dupont.example", Name: "Boulangerie Dupont"},
		&channels.Message{ID: "dlv_5c1f0e9a7b3d4e21", Kind: "incident.update", Locale: "fr",
			Subject: "[Résolu] Paiements refusés", Text: "…", HTML: "<p>…</p>"})
	switch c := channels.Classify(err); {
	case err == nil:
	case c.Permanent && c.Action == channels.SuppressAddress:
		// the dispatcher adds the address to the suppressions
	case c.Permanent:
		// recorded as refused, never retried
	default:
		// retried by the dispatcher
	}
}
