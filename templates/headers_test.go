package templates

import "testing"

func TestFeedbackID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		incident, mailType, want string
	}{
		{"TSR-1610", "incident-monitoring", "TSR-1610:incident-monitoring:herald"},
		{"", "notice-endpoint.disabled", "notice-endpoint.disabled:herald"},
		{"", "", "herald"},
		{"a:b c", "incident-\tresolved:", "abc:incident-resolved:herald"},
	} {
		if got := feedbackID(tc.incident, tc.mailType); got != tc.want {
			t.Errorf("feedbackID(%q, %q) = %q, want %q", tc.incident, tc.mailType, got, tc.want)
		}
	}
}

func TestListIDHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"incidents.status.example.com", "<incidents.status.example.com>"},
		{" incidents.status.example.com ", "<incidents.status.example.com>"},
		{"<incidents.status.example.com>", "<incidents.status.example.com>"},
		{"Incident notifications <incidents.status.example.com>", "Incident notifications <incidents.status.example.com>"},
	} {
		if got := listID(tc.in); got != tc.want {
			t.Errorf("listID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
