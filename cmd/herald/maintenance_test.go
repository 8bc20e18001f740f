package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
)

// TestMaintenanceConfig: maintenance.reminders, in YAML and TOML, reaches
// the dispatcher per channel; a channel left out keeps its defaults, an
// empty list turns its reminders off.
func TestMaintenanceConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{
		writeFile(t, dir, "herald.yaml", "maintenance:\n  reminders:\n    email: [72h, 1h]\n    slack: []\n"),
		writeFile(t, dir, "herald.toml", "[maintenance.reminders]\nemail = [\"72h\", \"1h\"]\nslack = []\n"),
	} {
		cfg, err := loadConfig(f, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got := cfg.dispatcherConfig().WithDefaults().Maintenance.Reminders
		if len(got[channels.Email]) != 2 || got[channels.Email][0] != 72*time.Hour || len(got[channels.Slack]) != 0 ||
			len(got[channels.SMS]) != 1 || got[channels.SMS][0] != time.Hour || len(got[channels.Webhook]) != 2 {
			t.Errorf("%s: reminders %v", f, got)
		}
	}
}

// TestPreviewMaintenance: herald preview shows a maintenance's reminder
// and its rescheduling as subscribers get them, and refuses them for an
// update that is not a maintenance still to come, or with a bad window.
func TestPreviewMaintenance(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ev := writeFile(t, dir, "mnt.json", `{"id":"MNT-1:2","incident_id":"MNT-1","sequence":2,"status":"scheduled","components":["portal"],`+
		`"title":{"en":"Portal maintenance","fr":"Maintenance du portail"},"body":{"en":"Down for an hour.","fr":"Coupure d'une heure."},`+
		`"scheduled_for":"2026-05-06T20:00:00Z","scheduled_until":"2026-05-06T21:00:00Z"}`)
	incidentEv := filepath.Join("..", "..", "examples", "incidents.jsonl")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--event", ev, "--locale", "fr", "--channel", "sms", "--reminder", "24h"}, exitOK, "Maintenance dans 24 heures : Maintenance du portail\nle 06/05/2026 de 22h00 à 23h00 (CEST)"},
		{[]string{"--event", ev, "--locale", "en", "--channel", "email", "--moved-from", "2026-05-05T20:00:00Z/2026-05-05T21:00:00Z"}, exitOK, "Previous window: May 5, 2026, 10:00 PM to 11:00 PM (CEST)"},
		{[]string{"--event", ev, "--locale", "en", "--channel", "webhook", "--reminder", "1h"}, exitOK, `"type":"maintenance.reminder","timestamp":"2026-05-06T19:00:00Z"`},
		{[]string{"--event", incidentEv, "--locale", "en", "--channel", "sms", "--reminder", "1h"}, exitUsage, "not a maintenance still to come"},
		{[]string{"--event", ev, "--locale", "en", "--channel", "sms", "--reminder", "1h", "--moved-from", "a/b"}, exitUsage, "exclude each other"},
		{[]string{"--event", ev, "--locale", "en", "--channel", "sms", "--moved-from", "2026-05-05T21:00:00Z/2026-05-05T20:00:00Z"}, exitUsage, "the end after the start"},
		{[]string{"--event", ev, "--locale", "en", "--channel", "sms", "--reminder", "-1h"}, exitUsage, "must be positive"},
	} {
		code, out, errOut := herald(t, nil, "", append([]string{"preview"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("preview %v = %d\nstdout: %s\nstderr: %s\nwant %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
