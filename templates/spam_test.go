package templates

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
)

// spamThreshold is the score every corpus email must stay under.
const spamThreshold = 2.0

// TestSpamAssassin scores every corpus email in every locale with
// SpamAssassin (Debian's package, rules as shipped, local tests only: no
// network), composed by the email channel's renderer as it sends it, and prints
// the score distribution. It skips when spamassassin is not installed,
// unless HERALD_REQUIRE_SPAMASSASSIN=1.
func TestSpamAssassin(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("spamassassin")
	if err != nil {
		if os.Getenv("HERALD_REQUIRE_SPAMASSASSIN") == "1" {
			t.Fatal("spamassassin is required (HERALD_REQUIRE_SPAMASSASSIN=1) but not installed: apt-get install spamassassin")
		}
		t.Skip("spamassassin not installed (set HERALD_REQUIRE_SPAMASSASSIN=1 to require it)")
	}
	events := loadCorpus(t)
	r := newTestRenderer(t, testConfig())
	type item struct {
		name, id string
		msg      []byte
	}
	var items []item
	for _, ev := range events {
		for _, loc := range []string{"fr", "en", "it"} {
			out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, loc))
			if err != nil {
				t.Fatal(err)
			}
			id, msg := composeEmail(t, ev.ID+" "+loc, out)
			items = append(items, item{ev.ID + " " + loc, id, msg})
		}
	}
	n := r.Locales()
	notice, err := r.RenderNotice(Notice{Kind: NoticeEndpointDisabled, EndpointID: "e4", EndpointChannel: "webhook", Reason: "HTTP 410 Gone", At: acceptedAt},
		ChannelEmail, testRecipient(t, n[0]))
	if err != nil {
		t.Fatal(err)
	}
	id, msg := composeEmail(t, "notice", notice)
	items = append(items, item{"notice " + n[0], id, msg})
	// A control message carrying SpamAssassin's test string (GTUBE) must
	// score as spam, or the scoring itself is broken.
	gtube := *notice
	const gtubeString = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	gtube.Text += "\n" + gtubeString + "\n"
	gtube.HTML = strings.Replace(gtube.HTML, "</body>", "<p>"+gtubeString+"</p></body>", 1)
	id, msg = composeEmail(t, "control", &gtube)
	items = append(items, item{"control", id, msg})

	// One spamassassin process per core, each over an mbox of its share.
	workers := min(runtime.NumCPU(), 4)
	scores := make([]spamScore, len(items))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var idx []int
			var mbox bytes.Buffer
			for i := w; i < len(items); i += workers {
				idx = append(idx, i)
				writeMbox(&mbox, items[i].msg)
			}
			// spamassassin reorders an mbox: match results by Message-ID.
			got, err := runSpamAssassin(bin, mbox.Bytes())
			if err != nil {
				errs[w] = err
				return
			}
			for _, i := range idx {
				s, ok := got[items[i].id]
				if !ok {
					errs[w] = fmt.Errorf("spamassassin returned no score for %s (%s)", items[i].name, items[i].id)
					return
				}
				scores[i] = s
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if control := scores[len(scores)-1]; control.score < 100 {
		t.Fatalf("the GTUBE control message scored %.1f: scoring is broken", control.score)
	}
	scores, items = scores[:len(scores)-1], items[:len(items)-1]
	var values []float64
	rules := map[string]int{}
	for i, s := range scores {
		values = append(values, s.score)
		for _, rule := range s.rules {
			rules[rule]++
		}
		if s.score >= spamThreshold {
			t.Errorf("%s scores %.1f (rules %s)", items[i].name, s.score, strings.Join(s.rules, ","))
		}
	}
	t.Log(spamReport(values, rules))
}

// composeEmail builds the message the email channel submits for the
// rendering (package email's renderer: From, To, Date, the Message-ID of
// the delivery id, the rendered headers) and returns its Message-ID.
func composeEmail(t *testing.T, key string, out *Rendered) (string, []byte) {
	t.Helper()
	r, err := email.NewRenderer(email.Config{From: `"Statut des paiements" <status@herald.example.com>`})
	if err != nil {
		t.Fatal(err)
	}
	id := deliveryIDForTest(key)
	data, err := r.Render(channels.Endpoint{Address: "ops@dupont.example.com", Name: "Boulangerie Dupont"},
		&channels.Message{ID: id, Locale: out.Locale, Subject: out.Subject, Text: out.Text, HTML: out.HTML, Headers: out.Headers},
		acceptedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return email.MessageID(id, "herald.example.com"), data
}

// deliveryIDForTest imitates a delivery id: 32 hex digits.
func deliveryIDForTest(s string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return fmt.Sprintf("%016x%016x", h, h*31+7)
}

// writeMbox appends a message in mboxrd form.
func writeMbox(w *bytes.Buffer, msg []byte) {
	w.WriteString("From status@herald.example.com Sat May  3 14:12:00 2025\n")
	for _, line := range bytes.SplitAfter(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
	w.WriteString("\n\n")
}

type spamScore struct {
	score float64
	rules []string
}

var spamStatus = regexp.MustCompile(`score=(-?[0-9.]+) required=[0-9.]+ tests=([A-Za-z0-9_,\s]*?)\s*(?:autolearn=|version=|$)`)

// runSpamAssassin scores the messages of an mbox with local tests only
// and returns the scores by Message-ID.
func runSpamAssassin(bin string, mbox []byte) (map[string]spamScore, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	home, err := os.MkdirTemp("", "sa-home")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, bin, "--local", "--mbox", "-p", home+"/user_prefs")
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Stdin = bytes.NewReader(mbox)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("spamassassin: %w: %s", err, stderr.String())
	}
	scores := map[string]spamScore{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<22)
	var id, header string
	var status strings.Builder
	inHeaders := false
	done := func() {
		if id == "" || status.Len() == 0 {
			return
		}
		m := spamStatus.FindStringSubmatch(status.String())
		if m == nil {
			scores[id] = spamScore{score: 99, rules: []string{"UNPARSED:" + status.String()}}
			return
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		var rules []string
		for _, r := range strings.FieldsFunc(m[2], func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if r != "none" {
				rules = append(rules, r)
			}
		}
		scores[id] = spamScore{score: v, rules: rules}
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "From "):
			done()
			id, header, inHeaders = "", "", true
			status.Reset()
		case !inHeaders:
		case line == "":
			inHeaders = false
		case strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"):
			if header == "x-spam-status" {
				status.WriteString(" " + strings.TrimSpace(line))
			}
		default:
			name, value, _ := strings.Cut(line, ":")
			header = strings.ToLower(name)
			switch header {
			case "message-id":
				id = strings.Trim(strings.TrimSpace(value), "<>")
			case "x-spam-status":
				status.WriteString(line)
			}
		}
	}
	done()
	return scores, sc.Err()
}

// spamReport prints min, median, max, a histogram and the rules that fired.
func spamReport(values []float64, rules map[string]int) string {
	sort.Float64s(values)
	var b strings.Builder
	fmt.Fprintf(&b, "SpamAssassin scores of %d emails: min %.1f, median %.1f, max %.1f (threshold %.1f)\n",
		len(values), values[0], values[len(values)/2], values[len(values)-1], spamThreshold)
	buckets := []float64{0, 0.5, 1, 1.5, 2, 5}
	counts := make([]int, len(buckets)+1)
	for _, v := range values {
		i := sort.SearchFloat64s(buckets, v)
		counts[i]++
	}
	label := func(i int) string {
		switch {
		case i == 0:
			return fmt.Sprintf("      <= %.1f", buckets[0])
		case i == len(buckets):
			return fmt.Sprintf("       > %.1f", buckets[i-1])
		}
		return fmt.Sprintf("(%.1f, %.1f]", buckets[i-1], buckets[i])
	}
	for i, c := range counts {
		fmt.Fprintf(&b, "  %s %4d %s\n", label(i), c, strings.Repeat("#", (c*50+len(values)-1)/len(values)))
	}
	names := sortedKeys(rules)
	sort.SliceStable(names, func(i, j int) bool { return rules[names[i]] > rules[names[j]] })
	b.WriteString("  rules:")
	for _, n := range names {
		fmt.Fprintf(&b, " %s×%d", n, rules[n])
	}
	return b.String()
}
