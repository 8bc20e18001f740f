package templates

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Inline styles of the Markdown elements in email HTML: mail clients drop
// <style> blocks, so every element carries its own.
const (
	cssFont      = "font-family:Arial,Helvetica,sans-serif;"
	cssText      = cssFont + "font-size:15px;line-height:1.5;color:#1f2328;"
	cssParagraph = "margin:0 0 12px 0;" + cssText
	cssList      = "margin:0 0 12px 0;padding:0 0 0 22px;" + cssText
	cssListItem  = "margin:0 0 4px 0;"
	cssLink      = "color:#0b57d0;text-decoration:underline;"
	cssTable     = "border-collapse:collapse;width:100%;margin:0 0 12px 0;" + cssFont + "font-size:14px;line-height:1.4;color:#1f2328;"
	cssCell      = "border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top;"
	cssHeadCell  = cssCell + "background-color:#f6f8fa;font-weight:bold;"
	cssQuote     = "margin:0 0 12px 0;padding:0 0 0 12px;border-left:3px solid #d0d7de;color:#424a53;"
	cssCode      = "font-family:Consolas,Menlo,monospace;font-size:13px;background-color:#f6f8fa;"
)

var cssHeading = [7]string{
	"",
	"margin:16px 0 8px 0;" + cssFont + "font-size:19px;line-height:1.3;color:#1f2328;",
	"margin:16px 0 8px 0;" + cssFont + "font-size:17px;line-height:1.3;color:#1f2328;",
	"margin:14px 0 6px 0;" + cssFont + "font-size:16px;line-height:1.3;color:#1f2328;",
	"margin:12px 0 6px 0;" + cssFont + "font-size:15px;line-height:1.3;color:#1f2328;",
	"margin:12px 0 6px 0;" + cssFont + "font-size:15px;line-height:1.3;color:#1f2328;",
	"margin:12px 0 6px 0;" + cssFont + "font-size:15px;line-height:1.3;color:#1f2328;",
}

// newMarkdown returns the Markdown engine: CommonMark with GitHub tables,
// strikethrough and bare-URL links, line breaks kept (the status page
// writes one line per line), raw HTML never passed through (goldmark's
// default), links restricted to http(s) and images turned into links so
// that an email never loads a remote resource.
func newMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(
			extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignNone)),
			extension.Strikethrough,
			extension.NewLinkify(extension.WithLinkifyAllowedProtocols([]string{"http:", "https:"})),
		),
		goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(linkPolicy{}, 100))),
		goldmark.WithRendererOptions(html.WithHardWraps()),
	)
}

// safeURL reports whether s is an absolute http(s) URL with a host and no
// credentials: the only links Herald writes.
func safeURL(s string) bool {
	if s == "" || len(s) > 2048 || strings.ContainsAny(s, " \t\r\n<>\"'`\\") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}

// linkPolicy keeps http(s) links only (others become their text), turns
// images into links to the image (or their alt text), and sets the inline
// styles of email HTML.
type linkPolicy struct{}

func (linkPolicy) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	src := reader.Source()
	var unwrap, images []ast.Node
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			if !safeURL(string(n.Destination)) {
				unwrap = append(unwrap, n)
			} else {
				n.SetAttributeString("style", cssLink)
				n.Title = nil
			}
		case *ast.AutoLink:
			if n.AutoLinkType != ast.AutoLinkURL || !safeURL(string(n.URL(src))) {
				unwrap = append(unwrap, n)
			} else {
				n.SetAttributeString("style", cssLink)
			}
		case *ast.Image:
			images = append(images, n)
			return ast.WalkSkipChildren, nil
		case *ast.Heading:
			n.SetAttributeString("style", cssHeading[min(max(n.Level, 1), 6)])
		case *ast.Paragraph:
			if _, inItem := n.Parent().(*ast.ListItem); inItem {
				n.SetAttributeString("style", "margin:0;")
			} else {
				n.SetAttributeString("style", cssParagraph)
			}
		case *ast.List:
			n.SetAttributeString("style", cssList)
		case *ast.ListItem:
			n.SetAttributeString("style", cssListItem)
		case *ast.Blockquote:
			n.SetAttributeString("style", cssQuote)
		case *ast.CodeSpan:
			n.SetAttributeString("style", cssCode)
		case *east.Table:
			n.SetAttributeString("style", cssTable)
			n.SetAttributeString("cellpadding", "0")
			n.SetAttributeString("cellspacing", "0")
			n.SetAttributeString("role", "presentation")
		case *east.TableCell:
			if _, head := n.Parent().(*east.TableHeader); head {
				n.SetAttributeString("style", cssHeadCell)
			} else {
				n.SetAttributeString("style", cssCell)
			}
		}
		return ast.WalkContinue, nil
	})
	for _, n := range unwrap {
		parent := n.Parent()
		if al, ok := n.(*ast.AutoLink); ok {
			parent.ReplaceChild(parent, n, ast.NewString(al.Label(src)))
			continue
		}
		for c := n.FirstChild(); c != nil; {
			next := c.NextSibling()
			parent.InsertBefore(parent, n, c)
			c = next
		}
		parent.RemoveChild(parent, n)
	}
	for _, n := range images {
		img := n.(*ast.Image)
		parent := img.Parent()
		if safeURL(string(img.Destination)) {
			link := ast.NewLink()
			link.Destination = img.Destination
			link.SetAttributeString("style", cssLink)
			for c := img.FirstChild(); c != nil; {
				next := c.NextSibling()
				link.AppendChild(link, c)
				c = next
			}
			if !link.HasChildren() {
				link.AppendChild(link, ast.NewString(img.Destination))
			}
			parent.ReplaceChild(parent, img, link)
			continue
		}
		for c := img.FirstChild(); c != nil; {
			next := c.NextSibling()
			parent.InsertBefore(parent, img, c)
			c = next
		}
		parent.RemoveChild(parent, img)
	}
}

// mdDoc is one parsed Markdown text and its renderings, computed once on
// first use (the renderings of an update are shared by every subscriber).
type mdDoc struct {
	md    goldmark.Markdown
	src   []byte
	colon string // the locale's label separator, for table rows

	once                       sync.Once
	root                       ast.Node
	htmlOnce, txtOnce          sync.Once
	mrkOnce, smsOnce           sync.Once
	html, txt, mrkdwn, smsText string
}

func newDoc(md goldmark.Markdown, source, colon string) *mdDoc {
	return &mdDoc{md: md, src: []byte(source), colon: colon}
}

func (d *mdDoc) parse() ast.Node {
	d.once.Do(func() { d.root = d.md.Parser().Parse(text.NewReader(d.src)) })
	return d.root
}

// HTML returns the email HTML of the text, with inline styles.
func (d *mdDoc) HTML() string {
	d.htmlOnce.Do(func() {
		var b bytes.Buffer
		if err := d.md.Renderer().Render(&b, d.src, d.parse()); err != nil {
			// Rendering into a buffer cannot fail; keep the text
			// readable if it ever does.
			b.Reset()
			b.WriteString("<p>" + htmlEscape(d.Text()) + "</p>")
		}
		d.html = b.String()
	})
	return d.html
}

// Text returns the plain-text rendering: headings and paragraphs as lines
// separated by blank lines, "- " bullets, tables as bullet rows
// ("- Header: cell"), links as "text (url)".
func (d *mdDoc) Text() string {
	d.txtOnce.Do(func() {
		w := &plainWriter{src: d.src, colon: d.colon}
		d.txt = strings.Join(w.blocks(d.parse()), "\n\n")
	})
	return d.txt
}

// SMSText returns the text on one line, links reduced to their label (an
// SMS carries one link, the update's).
func (d *mdDoc) SMSText() string {
	d.smsOnce.Do(func() {
		w := &plainWriter{src: d.src, colon: d.colon, bareLinks: true}
		d.smsText = cleanLine(strings.Join(w.blocks(d.parse()), "\n"))
	})
	return d.smsText
}

// Mrkdwn returns the Slack mrkdwn rendering: headings as bold lines,
// *bold*, _italic_, ~strike~, "• " bullets, tables as bullet rows, links
// as <url|text>, and &, <, > escaped in the text.
func (d *mdDoc) Mrkdwn() string {
	d.mrkOnce.Do(func() {
		w := &plainWriter{src: d.src, colon: d.colon, mrkdwn: true}
		d.mrkdwn = strings.Join(w.blocks(d.parse()), "\n\n")
	})
	return d.mrkdwn
}

// plainWriter renders a Markdown tree as plain text or Slack mrkdwn.
type plainWriter struct {
	src       []byte
	colon     string
	mrkdwn    bool
	bareLinks bool // links as their label only
}

// blocks renders the block children of n, one string per block.
func (w *plainWriter) blocks(n ast.Node) []string {
	var out []string
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if s := w.block(c); strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

func (w *plainWriter) block(n ast.Node) string {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock:
		return w.inlines(n, true)
	case *ast.Heading:
		t := strings.TrimSpace(w.inlines(n, false))
		if w.mrkdwn && t != "" {
			return "*" + t + "*"
		}
		return t
	case *ast.List:
		return w.list(n)
	case *ast.Blockquote:
		lines := strings.Split(strings.Join(w.blocks(n), "\n\n"), "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight("> "+l, " ")
		}
		return strings.Join(lines, "\n")
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			b.Write(seg.Value(w.src))
		}
		code := strings.TrimRight(b.String(), "\n")
		if w.mrkdwn {
			return "```\n" + escapeMrkdwn(code) + "\n```"
		}
		return "    " + strings.ReplaceAll(code, "\n", "\n    ")
	case *ast.ThematicBreak:
		return "----"
	case *ast.HTMLBlock:
		return "" // raw HTML is never passed through
	case *east.Table:
		return w.table(n)
	}
	// Unknown block: render its children.
	return strings.Join(w.blocks(n), "\n\n")
}

func (w *plainWriter) list(l *ast.List) string {
	var items []string
	num := l.Start
	for it := l.FirstChild(); it != nil; it = it.NextSibling() {
		marker := "- "
		if w.mrkdwn {
			marker = "• "
		}
		if l.IsOrdered() {
			marker = strconv.Itoa(num) + ". "
			num++
		}
		sep := "\n"
		if !l.IsTight {
			sep = "\n\n"
		}
		body := strings.Join(w.blocks(it), sep)
		indent := strings.Repeat(" ", len([]rune(marker)))
		lines := strings.Split(body, "\n")
		for i := range lines {
			if i == 0 {
				lines[i] = marker + lines[i]
			} else if lines[i] != "" {
				lines[i] = indent + lines[i]
			}
		}
		items = append(items, strings.Join(lines, "\n"))
	}
	if l.IsTight {
		return strings.Join(items, "\n")
	}
	return strings.Join(items, "\n\n")
}

// table renders a table as one bullet per row, "Header: cell" per column,
// which stays readable in a narrow text view, an SMS or a Slack message.
func (w *plainWriter) table(t *east.Table) string {
	var heads []string
	var rows []string
	for r := t.FirstChild(); r != nil; r = r.NextSibling() {
		var cells []string
		for c := r.FirstChild(); c != nil; c = c.NextSibling() {
			cells = append(cells, strings.TrimSpace(w.inlines(c, false)))
		}
		if _, ok := r.(*east.TableHeader); ok {
			heads = cells
			continue
		}
		marker, indent := "- ", "  "
		if w.mrkdwn {
			marker, indent = "• ", "   "
		}
		var lines []string
		for i, cell := range cells {
			if cell == "" {
				continue
			}
			line := cell
			if i < len(heads) && heads[i] != "" {
				h := heads[i] + w.colon
				if w.mrkdwn {
					h = "*" + heads[i] + w.colon + "*"
				}
				line = h + " " + cell
			}
			lines = append(lines, line)
		}
		if len(lines) == 0 {
			continue
		}
		rows = append(rows, marker+strings.Join(lines, "\n"+indent))
	}
	return strings.Join(rows, "\n")
}

// inlines renders the inline children of n. emph false drops emphasis
// markers (inside headings and table headers, which are bold already).
func (w *plainWriter) inlines(n ast.Node, emph bool) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		w.inline(&b, c, emph)
	}
	return strings.TrimSpace(trimLines(b.String()))
}

func (w *plainWriter) inline(b *strings.Builder, n ast.Node, emph bool) {
	switch n := n.(type) {
	case *ast.Text:
		w.text(b, string(n.Value(w.src)))
		if n.HardLineBreak() || n.SoftLineBreak() {
			b.WriteByte('\n')
		}
	case *ast.String:
		w.text(b, string(n.Value))
	case *ast.CodeSpan:
		var inner strings.Builder
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			if t, ok := c.(*ast.Text); ok {
				inner.Write(t.Value(w.src))
			} else if s, ok := c.(*ast.String); ok {
				inner.Write(s.Value)
			}
		}
		if w.mrkdwn {
			b.WriteString("`" + escapeMrkdwn(inner.String()) + "`")
		} else {
			b.WriteString(inner.String())
		}
	case *ast.Emphasis:
		marker := ""
		if w.mrkdwn && emph {
			marker = "_"
			if n.Level >= 2 {
				marker = "*"
			}
		}
		w.wrap(b, n, marker, emph)
	case *east.Strikethrough:
		marker := ""
		if w.mrkdwn && emph {
			marker = "~"
		}
		w.wrap(b, n, marker, emph)
	case *ast.Link:
		w.link(b, string(n.Destination), w.children(n, emph))
	case *ast.AutoLink:
		u := string(n.URL(w.src))
		w.link(b, u, string(n.Label(w.src)))
	case *ast.RawHTML:
		// raw HTML is never passed through
	default:
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			w.inline(b, c, emph)
		}
	}
}

func (w *plainWriter) children(n ast.Node, emph bool) string {
	var inner strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		w.inline(&inner, c, emph)
	}
	return inner.String()
}

// wrap writes n's content between markers, keeping surrounding spaces
// outside the markers (mrkdwn requires "*bold*", not "* bold *").
func (w *plainWriter) wrap(b *strings.Builder, n ast.Node, marker string, emph bool) {
	inner := w.children(n, emph)
	core := strings.TrimSpace(inner)
	if core == "" || marker == "" || strings.Contains(core, "\n") {
		b.WriteString(inner)
		return
	}
	lead := inner[:len(inner)-len(strings.TrimLeftFunc(inner, unicode.IsSpace))]
	trail := inner[len(strings.TrimRightFunc(inner, unicode.IsSpace)):]
	b.WriteString(lead + marker + core + marker + trail)
}

func (w *plainWriter) link(b *strings.Builder, dest, label string) {
	label = strings.TrimSpace(label)
	if w.mrkdwn {
		dest = strings.NewReplacer("<", "%3C", ">", "%3E", "|", "%7C").Replace(dest)
		if label == "" || label == escapeMrkdwn(dest) {
			b.WriteString("<" + dest + ">")
			return
		}
		b.WriteString("<" + dest + "|" + label + ">")
		return
	}
	if label == "" || label == dest {
		b.WriteString(dest)
		return
	}
	if w.bareLinks {
		b.WriteString(label)
		return
	}
	b.WriteString(label + " (" + dest + ")")
}

func (w *plainWriter) text(b *strings.Builder, s string) {
	if w.mrkdwn {
		s = escapeMrkdwn(s)
	}
	b.WriteString(s)
}

// escapeMrkdwn escapes the three characters Slack's mrkdwn treats as
// control characters.
func escapeMrkdwn(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// trimLines removes trailing spaces of every line.
func trimLines(s string) string {
	if !strings.Contains(s, " \n") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " \t")
	}
	return strings.Join(lines, "\n")
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}
