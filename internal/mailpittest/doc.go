// Package mailpittest runs Mailpit, a real SMTP server with a REST API, for
// Herald's tests: email is sent to it over SMTP on a loopback port and read
// back through its API (headers, both parts decoded, the raw message).
//
// [Start] finds the Mailpit binary on PATH, in GOBIN or in GOPATH/bin, and
// installs it with "go install" ([Module]) when it is missing. A test that
// cannot have Mailpit is skipped, unless the environment variable named by
// [RequireEnv] is set (CI sets it): then it fails.
//
//	mp := mailpittest.Start(t, mailpittest.Options{})
//	// send to mp.Host:mp.SMTPPort ...
//	got := mp.Search(t, "to:ops@dupont.example")
//	msg := mp.Message(t, got[0].ID)
//
// Each server listens on free ports of 127.0.0.1, stores its messages in
// the test's temporary directory, keeps every message (no limit), and stops
// when the test ends.
package mailpittest
