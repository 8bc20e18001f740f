package egress_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/heraldhq/herald/egress"
)

func ExamplePolicy_CheckURL() {
	var p egress.Policy
	for _, raw := range []string{
		"https://hooks.example.com/status?token=s3cr3t",
		"http://hooks.example.com/status",
		"https://169.254.169.254/latest/meta-data/",
		"https://0x7f.0.0.1/",
		"https://user:pw@hooks.example.com/",
	} {
		u, err := p.CheckURL(raw, false)
		var blocked *egress.BlockedError
		switch {
		case errors.As(err, &blocked):
			fmt.Println("blocked:", blocked.Reason)
		case err != nil:
			fmt.Println("refused:", err)
		default:
			fmt.Println("ok:", u.Host)
		}
	}
	// Output:
	// ok: hooks.example.com
	// refused: invalid URL: scheme must be https
	// blocked: link-local (cloud metadata)
	// blocked: non-canonical IPv4 form
	// refused: invalid URL: credentials in URLs are not allowed
}

func ExampleNewClient() {
	client, err := egress.NewClient(egress.Config{
		// Tests and operators may open specific ranges.
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	// The cloud metadata address is refused at dial time.
	_, err = client.Get("http://169.254.169.254/latest/meta-data/")
	var blocked *egress.BlockedError
	fmt.Println(errors.As(err, &blocked))
	// Output: true
}
