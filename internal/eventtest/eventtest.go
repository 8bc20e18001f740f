package eventtest

import (
	"encoding/json"
	"fmt"
)

// Event returns a small event of incident incidentID at sequence seq, with
// status, component "oney" and French and English texts. extra are name,
// value pairs that set or replace top-level fields; a value that parses as
// JSON is used as such, any other as a string.
func Event(incidentID string, seq int, status string, extra ...string) string {
	ev := map[string]any{
		"id": fmt.Sprintf("%s:%d", incidentID, seq), "incident_id": incidentID, "sequence": seq, "status": status,
		"components": []string{"oney"}, "title": map[string]string{"fr": "Panne Oney", "en": "Oney outage"},
		"body": map[string]string{"fr": "Nous enquêtons.", "en": "We are investigating."},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		var v any
		if err := json.Unmarshal([]byte(extra[i+1]), &v); err != nil {
			v = extra[i+1]
		}
		ev[extra[i]] = v
	}
	out, _ := json.Marshal(ev)
	return string(out)
}
