// Package multilingual cuts the multilingual titles and bodies a status
// page writes into one text per language, and parses the shared header
// of a body into fields.
//
//	s, err := multilingual.New(multilingual.Config{}) // fr, en, it
//	body := s.SplitBody(ev.Body)   // body.Header, body.Parts
//	texts := body.Texts()          // {"fr": "…", "en": "…", "it": "…"}
//	title := s.SplitTitle(ev.Title).Texts()
//
// # Bodies
//
// A body may open with a header shared by every language:
//
//	TSR-1723 - Début / Start / Inizio : 03/05/2025 - Fin / End / Fine : En cours / Ongoing / In corso
//	- Catégorie / Category / Categoria : Production - Oney - Responsabilité / Responsibility /
//	Responsabilità : Externe / External / Esterna - Priorité / Priority / Priorità : P1
//
// It is parsed into a [Header]: reference, start and end (dates, or
// times read as wall times of Config.Location when written without a
// zone or as CET/CEST; "12.07AM" and "16h11" forms), whether the
// incident is ongoing, category and responsibility per language (the
// values of "A / B / C" matched to the languages of the field's label),
// and priority. The header is found only at the start of the body, with
// at least two labelled fields.
//
// The rest is cut at the markers the status page writes:
//
//   - language codes: "FR … EN … IT …", "FR : …";
//   - banners naming a language: "==============ENGLISH VERSION==============",
//     "==============VERSIONE ITALIANA==============", "====== ITALIA ======";
//   - "In italiano :", "In Italian:", "**In Italiano :**";
//   - rules that name no language ("----------", "—------");
//   - notes announcing the translations, which are not text:
//     "_English version below_", "_English version below / Versione Italiana in calce_".
//
// A code is a marker when it opens the text or follows another marker,
// when the text after it reads as that language, or when it follows the
// end of a sentence and the text after it reads as no other language: the
// "IT" of "our IT teams" is text.
//
// # Identification
//
// Text that no marker announces (before the first marker, after a rule,
// or a whole body without markers) is identified sentence by sentence with
// github.com/abadojack/whatlanggo, restricted to the configured languages.
// A sentence of at least three words identified with Config.MinConfidence
// decides its language, and so does a sentence of five words or more
// identified with 60 % of it when sentences in another language are
// around it (short sentences never reach a high confidence). The others
// take the language of their context: between two languages, the one of
// the two they read more like; a greeting ("Hello,") the language that
// follows it; else the language before them. Runs shorter than
// twenty letters join their neighbours, so that a quoted term or a
// signature does not make a language of its own. Where languages change
// without a full stop ("… L'équipe Payplug Since 08th April, …"), the cut
// is placed before the capitalised word where the text before reads as the
// first language and the text after as the second. A run identified as a
// language that a marker announces elsewhere in the body joins its
// neighbour: where the status page marks languages, it marks all of them.
//
// # Titles
//
// A title is a prefix shared by every language ("INCIDENT PROCESSING |")
// and translations separated by " / " ("Perturbations paiement Oney /
// Oney payment disruptions / Perturbazioni pagamenti Oney"). Short texts
// identify poorly, so translations identified with confidence keep their
// language and the others take the remaining languages in the configured
// order, the order the status page writes them in. Two translations
// identified as the same language, or a translation of a single word
// ("Nexo / Pax"), mean the title is not a list of translations; it is then
// one part in its identified language.
//
// # Results
//
// A [Result] holds the whole input, in order: the header's raw text, the
// title's prefix, and each part's marker and text. Nothing is dropped but
// white space. When no language can be told, every part has an empty
// Lang and [Result.Texts] is empty: send the text whole. A language the
// text does not have is simply absent; choosing a fallback is the
// caller's business.
package multilingual
