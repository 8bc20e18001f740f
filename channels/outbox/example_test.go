package outbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldhq/herald/channels"
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
