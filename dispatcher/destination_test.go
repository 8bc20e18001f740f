package dispatcher

import (
	"net/url"
	"testing"
)

// slowDestinationKey is destinationKey without its fast path.
func slowDestinationKey(channel, target string) string {
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		return channel + "|" + u.Host
	}
	return channel
}

func TestDestinationKey(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"https://hooks.example.com/a/b?c#d", "webhook|hooks.example.com"},
		{"https://Hooks.Example.com:8443", "webhook|Hooks.Example.com:8443"},
		{"http://127.0.0.1:9/x", "webhook|127.0.0.1:9"},
		{"https://h.example:", "webhook|h.example:"},
		{"https://h.example:abc/", "webhook"},
		{"https://user:pw@h.example/", "webhook|h.example"},
		{"https://[::1]:8080/", "webhook|[::1]:8080"},
		{"https:///path", "webhook"},
		{"ops@example.com", "webhook"},
		{"+33612345678", "webhook"},
	} {
		if got := destinationKey("webhook", tc.target); got != tc.want {
			t.Errorf("destinationKey(%q) = %q, want %q", tc.target, got, tc.want)
		}
	}
}

// FuzzDestinationKey checks the fast path against url.Parse.
func FuzzDestinationKey(f *testing.F) {
	for _, s := range []string{"https://h.example/x", "http://h:1", "https://a@b/", "https://h.example:99999999999999999999/", "https://%41/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if got, want := destinationKey("webhook", target), slowDestinationKey("webhook", target); got != want {
			t.Fatalf("destinationKey(%q) = %q, url.Parse gives %q", target, got, want)
		}
	})
}
