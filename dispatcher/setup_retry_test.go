package dispatcher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestSetupRetriesAFormingCluster: Setup's retries wait out what a
// JetStream cluster answers while it forms (no leader yet, temporarily
// unavailable, replicas not placeable because a node is not yet seen),
// give up on a placement still refused after its wait, and return other
// errors at once.
func TestSetupRetriesAFormingCluster(t *testing.T) {
	t.Parallel()
	apiErr := func(code jetstream.ErrorCode) error {
		return &jetstream.APIError{Code: 400, ErrorCode: code, Description: "test"}
	}
	for _, tc := range []struct {
		name      string
		errs      []error // answered in turn, then nil
		forever   error   // answered for ever instead of nil
		wantCalls int
		wantErr   bool
	}{
		{name: "no peers while the cluster forms", errs: []error{apiErr(jsErrClusterNoPeers), apiErr(jsErrClusterNoPeers)}, wantCalls: 3},
		{name: "no leader, then unavailable", errs: []error{apiErr(jsErrClusterNotLeader), apiErr(jsErrClusterNotAvail), apiErr(jsErrClusterIncomplete)}, wantCalls: 4},
		{name: "no stream response", errs: []error{jetstream.ErrNoStreamResponse}, wantCalls: 2},
		{name: "a bad request", forever: apiErr(jetstream.JSErrCodeBadRequest), wantCalls: 1, wantErr: true},
		{name: "placement refused for good", forever: apiErr(jsErrClusterNoPeers), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := retryFor(t.Context(), 300*time.Millisecond, func() error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return tc.forever
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v after %d calls", err, calls)
			}
			if tc.wantCalls > 0 && calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.forever != nil && tc.wantCalls == 0 && calls < 2 {
				t.Errorf("gave up after %d calls, before the placement wait", calls)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := retryFor(ctx, time.Minute, func() error { return jetstream.ErrNoStreamResponse }); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: %v", err)
	}
}
