package outbox_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/channels/outbox"
)

func Example() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = os.RemoveAll(dir) }()

	// No SMS provider configured yet: SMS go to the outbox.
	sms, err := outbox.New(outbox.Config{
		Dir:     dir,
		Channel: channels.SMS,
		Now:     func() time.Time { return time.Date(2025, 4, 10, 9, 43, 0, 0, time.UTC) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	receipt, err := sms.Send(context.Background(),
		channels.Endpoint{Address: "+33612345678"},
		&channels.Message{ID: "dlv_5c1f0e9a7b3d4e21", Locale: "fr", Text: "TSR-1610 résolu : les paiements Nexo fonctionnent."})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(receipt.Outbox, receipt.Detail)
	content, _ := os.ReadFile(filepath.Join(dir, receipt.Detail))
	fmt.Print(string(content))
	// Output:
	// true sms/2025-04-10/dlv_5c1f0e9a7b3d4e21.txt
	// To: +33612345678
	// Date: 2025-04-10T09:43:00Z
	// Delivery: dlv_5c1f0e9a7b3d4e21
	// Locale: fr
	//
	// TSR-1610 résolu : les paiements Nexo fonctionnent.
}

// No SMTP server configured yet: emails go to the outbox, rendered from
// the email configuration as the email channel would send them.
func Example_email() {
	dir, err := os.MkdirTemp("", "outbox")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = os.RemoveAll(dir) }()

	renderer, err := email.NewRenderer(email.Config{
		From:       "Herald Status <status@herald.example>",
		ListID:     "status.herald.example",
		FeedbackID: "herald",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mails, err := outbox.New(outbox.Config{
		Dir:     dir,
		Channel: channels.Email,
		Email:   renderer,
		Now:     func() time.Time { return time.Date(2025, 4, 10, 9, 43, 0, 0, time.UTC) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	receipt, err := mails.Send(context.Background(),
		channels.Endpoint{Address: "ops@dupont.example", Name: "Boulangerie Dupont"},
		&channels.Message{ID: "dlv_5c1f0e9a7b3d4e21", Kind: "incident.update", IncidentID: "TSR-1610", Status: "resolved",
			Locale: "fr", Subject: "[Résolu] Paiements Nexo", Text: "Les paiements Nexo fonctionnent."})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(receipt.Detail)
	content, _ := os.ReadFile(filepath.Join(dir, receipt.Detail))
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		for _, h := range []string{"Date:", "Feedback-ID:", "List-Id:", "Message-ID:", "To:"} {
			if strings.HasPrefix(sc.Text(), h) {
				fmt.Println(sc.Text())
			}
		}
	}
	// Output:
	// email/2025-04-10/dlv_5c1f0e9a7b3d4e21.eml
	// Date: Thu, 10 Apr 2025 09:43:00 +0000
	// Feedback-ID: TSR-1610:incident-resolved:herald
	// List-Id: <status.herald.example>
	// Message-ID: <dlv_5c1f0e9a7b3d4e21@herald.example>
	// To: "Boulangerie Dupont" <ops@dupont.example>
}
