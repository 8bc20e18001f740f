package templates

import (
	"regexp"
	"strings"
	"testing"
)

func TestMarkdownHTMLSafety(t *testing.T) {
	t.Parallel()
	md := newMarkdown()
	for _, tc := range []struct {
		name, in     string
		want, reject []string
	}{
		{"raw html dropped", "Hello <script>alert(1)</script> <b onclick=x>bold</b>\n\n<iframe src=x></iframe>",
			[]string{"Hello", "bold"}, []string{"<script", "<b ", "<iframe", "onclick"}},
		{"javascript link", "[click](javascript:alert(1)) and [data](data:text/html,x)",
			[]string{"click", "data"}, []string{"javascript:", "data:text", "<a "}},
		{"http link kept", "[status](https://status.example.com/x?a=1&b=2)",
			[]string{`<a href="https://status.example.com/x?a=1&amp;b=2" style="`, ">status</a>"}, nil},
		{"mailto dropped", "[write](mailto:a@example.com) <b@example.com>",
			[]string{"write", "b@example.com"}, []string{"mailto:", "<a "}},
		{"image becomes link", "![chart](https://img.example.com/c.png) ![local](/x.png)",
			[]string{`<a href="https://img.example.com/c.png"`, ">chart</a>", "local"}, []string{"<img", "/x.png"}},
		{"bare url linked", "See https://status.example.com/incidents/1 now",
			[]string{`<a href="https://status.example.com/incidents/1"`}, nil},
		{"escaped text", "Fees < 5 & > 2 \"quoted\"",
			[]string{"&lt; 5 &amp; &gt; 2"}, []string{"< 5"}},
		{"inline styles", "# Title\n\ntext\n\n* a\n* b\n\n| h | i |\n|---|---|\n| 1 | 2 |",
			[]string{`<h1 style="`, `<p style="`, `<ul style="`, `<li style="`, `<table style="`, `<th style="`, `<td style="`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := newDoc(md, tc.in, ":").HTML()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("HTML lacks %q:\n%s", w, got)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(got, r) {
					t.Errorf("HTML holds %q:\n%s", r, got)
				}
			}
		})
	}
}

func TestMarkdownTextAndMrkdwn(t *testing.T) {
	t.Parallel()
	md := newMarkdown()
	in := "# Post Mortem\n\n**Impact** on <b>payments</b> & _refunds_ ~~late~~ `code`\n\n" +
		"* **13 mars :** first\n* second with [link](https://x.example.com/a?b=1&c=2)\n  1. nested\n\n" +
		"| **Symptoms** | **Actions** |\n| --- | --- |\n| Slow | Fix it |\n| | Only action |\n\n" +
		"> quoted\n\nhttps://bare.example.com\n\n[bad](javascript:x)"
	d := newDoc(md, in, " :")
	text := d.Text()
	wantText := "Post Mortem\n\n" +
		"Impact on payments & refunds late code\n\n" +
		"- 13 mars : first\n- second with link (https://x.example.com/a?b=1&c=2)\n  1. nested\n\n" +
		"- Symptoms : Slow\n  Actions : Fix it\n- Actions : Only action\n\n" +
		"> quoted\n\nhttps://bare.example.com\n\nbad"
	if text != wantText {
		t.Errorf("Text:\n%s\nwant:\n%s", text, wantText)
	}
	mk := d.Mrkdwn()
	wantMk := "*Post Mortem*\n\n" +
		"*Impact* on payments &amp; _refunds_ ~late~ `code`\n\n" +
		"• *13 mars :* first\n• second with <https://x.example.com/a?b=1&c=2|link>\n  1. nested\n\n" +
		"• *Symptoms :* Slow\n   *Actions :* Fix it\n• *Actions :* Only action\n\n" +
		"> quoted\n\n<https://bare.example.com>\n\nbad"
	if mk != wantMk {
		t.Errorf("Mrkdwn:\n%s\nwant:\n%s", mk, wantMk)
	}
	if got := escapeMrkdwn("a < b && c > d"); got != "a &lt; b &amp;&amp; c &gt; d" {
		t.Errorf("escapeMrkdwn = %q", got)
	}
	if got := newDoc(md, "<@U123> <!channel> a <https://evil|x>", ":").Mrkdwn(); strings.ContainsAny(got, "<>") {
		t.Errorf("mrkdwn control sequences pass through: %q", got)
	}
}

func TestReflowMarkdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain prose unchanged", "Nous avons identifié un incident. **Merci** de patienter.", "Nous avons identifié un incident. **Merci** de patienter."},
		{"multi-line unchanged", "# Title\n**A** b", "# Title\n**A** b"},
		{"post mortem",
			"# Post Mortem **Référence incident** TSR-1 **Synthèse** * **13 mars :** début. **Début de l’incident.** * **14 mars** : fin. **Contexte** N/A **Actions** | **Symptômes** | **Actions** | | --- | --- | | Lent | Corriger | | Bug | Tester | Merci.",
			"# Post Mortem\n\n**Référence incident**\nTSR-1\n\n**Synthèse**\n\n* **13 mars :** début. **Début de l’incident.**\n* **14 mars** : fin.\n\n**Contexte**\nN/A\n\n**Actions**\n\n| **Symptômes** | **Actions** |\n| --- | --- |\n| Lent | Corriger |\n| Bug | Tester |\n\nMerci."},
		{"timeline",
			"**Synthèse de l’incident** 10h50 : expiration et **début de l’incident** 11h46 : alertes 1\\.30pm : détection **Root cause** Expiration",
			"**Synthèse de l’incident**\n\n* 10h50 : expiration et **début de l’incident**\n* 11h46 : alertes\n* 1\\.30pm : détection\n\n**Root cause**\nExpiration"},
		{"headings", "# _English version below_ # Post Mortem **Incident reference** TSR-1",
			"# _English version below_\n\n# Post Mortem\n\n**Incident reference**\nTSR-1"},
		{"not a table", "a | --- | b **X** y **Y** z", "a | --- | b\n\n**X**\ny\n\n**Y**\nz"},
	} {
		if got := reflowMarkdown(tc.in); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}

func TestTruncateMarkdown(t *testing.T) {
	t.Parallel()
	para := strings.Repeat("word ", 100)
	in := para + "\n\n" + para + "\n\n" + para
	got, cut := truncateMarkdown(in, 1100)
	if !cut || got != strings.TrimSpace(para+"\n\n"+para) {
		t.Errorf("block cut: %v %d", cut, len(got))
	}
	got, cut = truncateMarkdown(strings.Repeat("mot ", 1000), 501)
	if !cut || !strings.HasSuffix(got, "mot …") || len([]rune(got)) > 503 {
		t.Errorf("word cut: %q", got[len(got)-20:])
	}
	if got, cut := truncateMarkdown("short", 10); cut || got != "short" {
		t.Errorf("short: %q %v", got, cut)
	}
}

var hrefAttr = regexp.MustCompile(`href="([^"]*)"`)

// FuzzMarkdown renders arbitrary update text (outside input) and checks
// that nothing unsafe reaches the HTML or mrkdwn and nothing panics.
func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{
		"# Post Mortem **Référence** TSR-1 * **a :** b | **h** | **i** | | --- | --- | | 1 | 2 |",
		"[x](javascript:alert(1)) <script>x</script> ![i](http://x/y.png)",
		"10h50 : a 11h46 : b **Root cause** c",
		"| a | | --- | |",
		"** * ** # # |",
	} {
		f.Add(s)
	}
	md := newMarkdown()
	f.Fuzz(func(t *testing.T, s string) {
		s = cleanText(s)
		d := newDoc(md, reflowMarkdown(s), ":")
		h := strings.ToLower(d.HTML())
		for _, bad := range []string{"<script", "<img", "<iframe", " src=", " onerror=", "<style"} {
			if strings.Contains(h, bad) {
				t.Fatalf("HTML holds %q: %s", bad, h)
			}
		}
		for _, m := range hrefAttr.FindAllStringSubmatch(h, -1) {
			if !strings.HasPrefix(m[1], "http://") && !strings.HasPrefix(m[1], "https://") {
				t.Fatalf("link to %q: %s", m[1], h)
			}
		}
		_ = d.Text()
		mk := d.Mrkdwn()
		for _, bad := range []string{"<!", "<@", "<#"} {
			if strings.Contains(mk, bad) {
				t.Fatalf("mrkdwn holds %q: %s", bad, mk)
			}
		}
	})
}
