package channels

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want Classification
	}{
		{"nil", nil, Classification{}},
		{"plain error retries", base, Classification{}},
		{"permanent", Permanent(base), Classification{Permanent: true}},
		{"wrapped permanent", fmt.Errorf("send: %w", Permanent(base)), Classification{Permanent: true}},
		{"disable", fmt.Errorf("a: %w", Disable(base)), Classification{Permanent: true, Action: DisableEndpoint}},
		{"suppress", Suppress(base), Classification{Permanent: true, Action: SuppressAddress}},
		{"retry after", fmt.Errorf("x: %w", RetryAfter(3*time.Second, base)), Classification{After: 3 * time.Second}},
		{"negative retry after", RetryAfter(-time.Second, base), Classification{}},
		{"joined", errors.Join(base, RetryAfter(time.Second, base)), Classification{After: time.Second}},
		{"permanent wins", RetryAfter(time.Second, Permanent(base)), Classification{Permanent: true}},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if Permanent(nil) != nil || RetryAfter(time.Second, nil) != nil || Disable(nil) != nil || Suppress(nil) != nil {
		t.Error("wrapping nil must stay nil")
	}
	var pe *ProviderError
	if !errors.As(Disable(&ProviderError{Status: 410}), &pe) || pe.Status != 410 {
		t.Error("ProviderError not reachable through Disable")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 5, 3, 16, 11, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0.5", 500 * time.Millisecond, true},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
		{"99999999", MaxRetryAfter, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHTTPStatusError(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ra := http.Header{"Retry-After": []string{"7"}}
	for _, tc := range []struct {
		status int
		header http.Header
		want   Classification
		isNil  bool
	}{
		{200, nil, Classification{}, true},
		{204, nil, Classification{}, true},
		{301, nil, Classification{Permanent: true}, false},
		{302, nil, Classification{Permanent: true}, false},
		{400, nil, Classification{Permanent: true}, false},
		{401, nil, Classification{Permanent: true}, false},
		{404, nil, Classification{Permanent: true}, false},
		{408, nil, Classification{}, false},
		{410, nil, Classification{Permanent: true, Action: DisableEndpoint}, false},
		{413, nil, Classification{Permanent: true}, false},
		{429, ra, Classification{After: 7 * time.Second}, false},
		{429, nil, Classification{}, false},
		{500, nil, Classification{}, false},
		{502, nil, Classification{}, false},
		{503, ra, Classification{After: 7 * time.Second}, false},
		{504, nil, Classification{}, false},
	} {
		err := HTTPStatusError(tc.status, tc.header, "", now)
		if (err == nil) != tc.isNil {
			t.Errorf("status %d: err = %v", tc.status, err)
			continue
		}
		if got := Classify(err); got != tc.want {
			t.Errorf("status %d: %+v, want %+v", tc.status, got, tc.want)
		}
	}
}
