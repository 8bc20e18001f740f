package templates

import (
	"errors"
	"os"
	"path/filepath"
)

// WriteFiles writes what a subscriber would receive into dir (created if
// needed) and returns the paths written:
//
//   - email: message.html (opens in a browser) and message.txt (herald
//     preview adds message.eml, composed by the email channel's renderer);
//   - SMS: sms.txt;
//   - Slack: slack.json, and slack-parent.json (the living parent message);
//   - webhook: webhook.json.
func (r *Rendered) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	switch {
	case r.HTML != "":
		if err := write("message.html", []byte(r.HTML)); err != nil {
			return written, err
		}
		if err := write("message.txt", []byte(r.Text)); err != nil {
			return written, err
		}
	case r.Parent != nil:
		if err := write("slack.json", r.Body); err != nil {
			return written, err
		}
		if err := write("slack-parent.json", r.Parent); err != nil {
			return written, err
		}
	case r.Body != nil:
		if err := write("webhook.json", r.Body); err != nil {
			return written, err
		}
	case r.Text != "":
		if err := write("sms.txt", []byte(r.Text+"\n")); err != nil {
			return written, err
		}
	default:
		return nil, errors.New("templates: nothing to write")
	}
	return written, nil
}
