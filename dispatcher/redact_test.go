package dispatcher

import "testing"

func TestRedactAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, addr, want string }{
		{"smtp echo", "status 550 code 5.1.1: <gone@dupont.example>: Recipient address rejected", "gone@dupont.example",
			"status 550 code 5.1.1: <[address]>: Recipient address rejected"},
		{"other case", "550 5.1.1 <Gone@Dupont.EXAMPLE> unknown; gone@dupont.example again", "gone@dupont.example",
			"550 5.1.1 <[address]> unknown; [address] again"},
		{"twilio echo", "code 21211: The 'To' number +33612345679 is not a valid phone number.", "+33612345679",
			"code 21211: The 'To' number [address] is not a valid phone number."},
		{"absent", "status 451 code 4.3.0: try again later", "ops@dupont.example", "status 451 code 4.3.0: try again later"},
		{"no address", "anything", "", "anything"},
		{"longer than the text", "a@b", "ops@dupont.example", "a@b"},
		{"non-ASCII around", "für ÉTÉ <ops@dupont.example> à", "OPS@dupont.example", "für ÉTÉ <[address]> à"},
		{"invalid UTF-8 before", "\xff\xfe <ops@dupont.example>", "ops@dupont.example", "\xff\xfe <[address]>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactAddress(tc.in, tc.addr); got != tc.want {
				t.Errorf("redactAddress(%q, %q) = %q, want %q", tc.in, tc.addr, got, tc.want)
			}
		})
	}
}
