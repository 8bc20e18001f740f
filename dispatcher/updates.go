package dispatcher

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// updateRef is an update as the incident snapshots know it.
type updateRef struct {
	incidentID string
	state      UpdateState
}

// findUpdate returns the update whose event id is eventID, looked up in
// every incident snapshot, or nil when no snapshot lists it (an operator's
// command names an update by its event id alone).
func findUpdate(ctx context.Context, kv jetstream.KeyValue, eventID string) (*updateRef, error) {
	ids, err := incidentIDs(ctx, kv)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		snap, _, err := (&snapshots{kv: kv}).get(ctx, id)
		if err != nil {
			return nil, err
		}
		if snap == nil {
			continue
		}
		for _, u := range snap.Updates {
			if u.EventID == eventID {
				return &updateRef{incidentID: id, state: u}, nil
			}
		}
	}
	return nil, nil
}
