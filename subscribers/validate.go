package subscribers

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
)

// Channel names (the same as package channels; subscribers depends on no
// other Herald package but the event schema).
const (
	channelEmail   = "email"
	channelSMS     = "sms"
	channelSlack   = "slack"
	channelWebhook = "webhook"
)

// MaxEndpoints is the most endpoints a subscriber may have.
const MaxEndpoints = 32

// MaxComponents is the most components a subscriber or an endpoint may
// list.
const MaxComponents = 256

// defaultSlackWebhookHosts are the hosts a Slack incoming-webhook URL may
// point at when [Rules.SlackWebhookHosts] is empty.
var defaultSlackWebhookHosts = []string{"hooks.slack.com", "hooks.slack-gov.com"}

// Rules are the deployment-specific parts of subscriber validation. The
// zero value accepts any well-formed component id, https webhooks only, and
// phone numbers in international form only.
type Rules struct {
	// Components is the component catalog; subscribers may only name
	// known components. Nil accepts any well-formed component id.
	Components *incident.Catalog
	// AllowHTTPWebhooks accepts plain http webhook URLs (for tests and
	// local receivers). Default false: https only.
	AllowHTTPWebhooks bool
	// WebhookURL, when set, checks a well-formed webhook URL further:
	// Herald passes the SSRF policy its webhooks are sent under, so that a
	// loopback, private or metadata address is refused when written (400
	// naming the field), not only when dialled. Its error is the field's
	// message; it must not quote the URL.
	WebhookURL func(raw string) error
	// Phone, SlackChannel, SlackWebhook and WebhookSecret, when set,
	// replace the built-in checks of those addresses: Herald passes the
	// checks of the channels that will send, so that what a channel would
	// refuse is refused when written, by the same code. Phone returns the
	// number in E.164 form. Errors must not quote the value.
	Phone         func(number string) (string, error)
	SlackChannel  func(id string) bool
	SlackWebhook  func(raw string) error
	WebhookSecret func(secret string) error
	// SlackWebhookHosts are the hosts accepted for Slack incoming-webhook
	// URLs. Default: hooks.slack.com and hooks.slack-gov.com.
	SlackWebhookHosts []string
	// DefaultRegion is the ISO 3166 region used to read phone numbers
	// written without a country code ("06 12 34 56 78" with "FR"). Empty
	// requires the international form ("+33...").
	DefaultRegion string
	// Unavailable refuses endpoints on channels Herald cannot send on,
	// with the reason as the field's message (strict mode refuses the
	// channels that have no provider). Nil accepts every channel.
	Unavailable map[string]string
	// SMSCountries lists the ISO 3166 alpha-2 codes ("FR", "IT") of the
	// countries SMS endpoints may be in. Empty accepts every country.
	// Whatever the list, only mobile numbers of a country are accepted:
	// premium-rate, shared-cost, toll-free, fixed-line, VoIP, personal,
	// pager, satellite and other non-geographic numbers are refused.
	SMSCountries []string
}

// FieldError is one validation problem, naming the JSON path of the field at
// fault ("endpoints[1].address"); the same type as the event schema's.
type FieldError = incident.FieldError

// FieldErrors lists every validation problem of a subscriber.
type FieldErrors = incident.FieldErrors

var (
	idPattern           = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	slackChannelPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{2,20}$`)
)

// ValidID reports whether s is a valid subscriber or endpoint id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Normalize validates s and puts it in canonical form in place: trimmed
// strings, canonical locale tag, E.164 phone numbers, lower-case email
// domains, sorted and de-duplicated lists. It returns [FieldErrors] listing
// every problem, or nil.
func (r Rules) Normalize(s *Subscriber) error {
	var fe FieldErrors
	s.ID = strings.TrimSpace(s.ID)
	switch {
	case s.ID == "":
		fe.Addf("id", "is required")
	case !ValidID(s.ID):
		fe.Addf("id", "must be 1 to 64 letters, digits, '-' or '_'")
	}
	s.Name = strings.TrimSpace(s.Name)
	checkLabel(&fe, "name", s.Name, 200)
	s.Locale = strings.TrimSpace(s.Locale)
	if s.Locale == "" {
		fe.Addf("locale", "is required (a BCP 47 tag such as fr-FR)")
	} else if tag, err := language.Parse(s.Locale); err != nil {
		fe.Addf("locale", "%q is not a BCP 47 language tag", clipValue(s.Locale))
	} else {
		s.Locale = tag.String()
	}
	s.Timezone = strings.TrimSpace(s.Timezone)
	if s.Timezone != "" {
		if _, err := LoadLocation(s.Timezone); err != nil {
			fe.Addf("timezone", "%q is not an IANA time zone", clipValue(s.Timezone))
		}
	}
	s.Components = r.components(&fe, "components", s.Components)
	checkPriority(&fe, "min_priority", s.MinPriority)
	s.Statuses = checkStatuses(&fe, "statuses", s.Statuses)
	if f := s.Follow; f != nil {
		f.IncidentID = strings.TrimSpace(f.IncidentID)
		if !incident.ValidIncidentID(f.IncidentID) {
			fe.Addf("follow.incident_id", "is not an incident id")
		}
		if f.EndedAfter < 0 {
			fe.Addf("follow.ended_after", "must not be negative")
		}
	}
	switch {
	case len(s.Endpoints) == 0:
		fe.Addf("endpoints", "at least one endpoint is required")
	case len(s.Endpoints) > MaxEndpoints:
		fe.Addf("endpoints", "at most %d endpoints", MaxEndpoints)
	}
	seen := make(map[string]int, len(s.Endpoints))
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		path := fmt.Sprintf("endpoints[%d]", i)
		ep.ID = strings.TrimSpace(ep.ID)
		switch {
		case ep.ID == "":
			fe.Addf(path+".id", "is required")
		case !ValidID(ep.ID):
			fe.Addf(path+".id", "must be 1 to 64 letters, digits, '-' or '_'")
		default:
			if j, dup := seen[ep.ID]; dup {
				fe.Addf(path+".id", "%q is already used by endpoints[%d]", ep.ID, j)
			}
			seen[ep.ID] = i
		}
		r.endpoint(&fe, path, s, ep)
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

func (r Rules) endpoint(fe *FieldErrors, path string, s *Subscriber, ep *Endpoint) {
	ep.Channel = strings.TrimSpace(ep.Channel)
	ep.Address = strings.TrimSpace(ep.Address)
	ep.URL = strings.TrimSpace(ep.URL)
	ep.SlackChannel = strings.TrimSpace(ep.SlackChannel)
	ep.Secret = secret.Value(strings.TrimSpace(ep.Secret.Reveal()))
	ep.WebhookURL = secret.Value(strings.TrimSpace(ep.WebhookURL.Reveal()))
	allowed := map[string]bool{}
	if why, ok := r.Unavailable[ep.Channel]; ok {
		fe.Addf(path+".channel", "%s", why)
	}
	switch ep.Channel {
	case "":
		fe.Addf(path+".channel", "is required (email, sms, slack or webhook)")
		return
	case channelEmail:
		allowed["address"] = true
		r.email(fe, path+".address", &ep.Address)
	case channelSMS:
		allowed["address"] = true
		r.phone(fe, path+".address", &ep.Address)
	case channelWebhook:
		allowed["url"], allowed["secret"], allowed["previous_secret"] = true, true, true
		r.webhookURL(fe, path+".url", ep.URL)
		r.webhookSecret(fe, path+".secret", ep.Secret)
		if !ep.PreviousSecret.IsZero() {
			r.webhookSecret(fe, path+".previous_secret", ep.PreviousSecret)
			if ep.PreviousSecretUntil == nil {
				fe.Addf(path+".previous_secret_until", "is required with previous_secret")
			}
		}
	case channelSlack:
		allowed["webhook_url"], allowed["slack_channel"] = true, true
		r.slack(fe, path, ep)
	default:
		fe.Addf(path+".channel", "must be one of email, sms, slack, webhook")
		return
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"address", ep.Address != ""}, {"url", ep.URL != ""}, {"secret", !ep.Secret.IsZero()},
		{"webhook_url", !ep.WebhookURL.IsZero()}, {"slack_channel", ep.SlackChannel != ""},
		{"previous_secret", !ep.PreviousSecret.IsZero()},
	} {
		if f.set && !allowed[f.name] {
			fe.Addf(path+"."+f.name, "is not used by channel %s", ep.Channel)
		}
	}
	ep.Components = r.components(fe, path+".components", ep.Components)
	if len(s.Components) > 0 {
		for _, c := range ep.Components {
			if !slices.Contains(s.Components, c) {
				fe.Addf(path+".components", "%q is not among the subscriber's components (an endpoint can only narrow them)", c)
			}
		}
	}
	checkPriority(fe, path+".min_priority", ep.MinPriority)
	ep.Statuses = checkStatuses(fe, path+".statuses", ep.Statuses)
	if len(s.Statuses) > 0 {
		for _, st := range ep.Statuses {
			if !slices.Contains(s.Statuses, st) {
				fe.Addf(path+".statuses", "%q is not among the subscriber's statuses (an endpoint can only narrow them)", st)
			}
		}
	}
	if q := ep.QuietHours; q != nil {
		q.Start, q.End = strings.TrimSpace(q.Start), strings.TrimSpace(q.End)
		_, errS := clock(q.Start)
		_, errE := clock(q.End)
		if errS != nil {
			fe.Addf(path+".quiet_hours.start", "must be HH:MM (24 h)")
		}
		if errE != nil {
			fe.Addf(path+".quiet_hours.end", "must be HH:MM (24 h)")
		}
		if errS == nil && errE == nil && q.Start == q.End {
			fe.Addf(path+".quiet_hours", "start and end must differ")
		}
	}
	if d := ep.Disabled; d != nil {
		d.Reason = strings.TrimSpace(d.Reason)
		checkLabel(fe, path+".disabled.reason", d.Reason, 500)
	}
}

func (r Rules) email(fe *FieldErrors, field string, addr *string) {
	a := *addr
	if a == "" {
		fe.Addf(field, "is required for channel email")
		return
	}
	parsed, err := mail.ParseAddress(a)
	if err != nil || parsed.Name != "" || parsed.Address != a || len(a) > 254 {
		fe.Addf(field, "%q is not an email address", clipValue(a))
		return
	}
	at := strings.LastIndexByte(a, '@')
	domain := strings.ToLower(a[at+1:])
	if !strings.Contains(domain, ".") && domain != "localhost" || strings.HasPrefix(domain, "[") {
		fe.Addf(field, "%q has no usable domain", clipValue(a))
		return
	}
	*addr = a[:at+1] + domain
}

func (r Rules) phone(fe *FieldErrors, field string, addr *string) {
	normalize := func(s string) (string, error) { return NormalizePhone(s, r.DefaultRegion) }
	if r.Phone != nil {
		normalize = r.Phone
	}
	n, err := normalize(*addr)
	if err != nil {
		fe.Addf(field, "%v", err)
		return
	}
	if err := r.CheckSMSNumber(n); err != nil {
		fe.Addf(field, "%v", err)
		return
	}
	*addr = n
}

// ErrNotMobile is wrapped by the error of [Rules.CheckSMSNumber] for a number
// that is not a mobile number (premium-rate, shared-cost, satellite...).
var ErrNotMobile = errors.New("not a mobile number")

// ErrCountry is wrapped by the error of [Rules.CheckSMSNumber] for a number
// of a country outside [Rules.SMSCountries].
var ErrCountry = errors.New("country not served by SMS")

// CheckSMSNumber checks that an E.164 number may receive SMS: a mobile
// number (libphonenumber's type MOBILE, or FIXED_LINE_OR_MOBILE where the
// numbering plan does not tell them apart) of a country in SMSCountries.
// Errors never quote the number.
func (r Rules) CheckSMSNumber(e164 string) error {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return fmt.Errorf("is not a phone number")
	}
	region := phonenumbers.GetRegionCodeForNumber(num)
	if region == "" || region == phonenumbers.UNKNOWN_REGION || region == "001" {
		return fmt.Errorf("%w: satellite and other non-geographic numbers are refused", ErrNotMobile)
	}
	switch t := phonenumbers.GetNumberType(num); t {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return fmt.Errorf("%w: a %s number cannot receive Herald's SMS", ErrNotMobile, numberTypeName(t))
	}
	if len(r.SMSCountries) > 0 && !slices.ContainsFunc(r.SMSCountries, func(c string) bool { return strings.EqualFold(strings.TrimSpace(c), region) }) {
		return fmt.Errorf("%w: numbers of %s are not accepted (accepted: %s)", ErrCountry, region, strings.Join(r.SMSCountries, ", "))
	}
	return nil
}

func numberTypeName(t phonenumbers.PhoneNumberType) string {
	switch t {
	case phonenumbers.FIXED_LINE:
		return "fixed-line"
	case phonenumbers.TOLL_FREE:
		return "toll-free"
	case phonenumbers.PREMIUM_RATE:
		return "premium-rate"
	case phonenumbers.SHARED_COST:
		return "shared-cost"
	case phonenumbers.VOIP:
		return "VoIP"
	case phonenumbers.PERSONAL_NUMBER:
		return "personal (forwarding)"
	case phonenumbers.PAGER:
		return "pager"
	case phonenumbers.UAN:
		return "universal access"
	case phonenumbers.VOICEMAIL:
		return "voicemail"
	}
	return "non-mobile"
}

// NormalizePhone parses a phone number and returns it in E.164 form
// ("+33612345678"). region reads numbers written without a country code;
// empty requires the international form.
func NormalizePhone(s, region string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("a phone number is required")
	}
	if region == "" && !strings.HasPrefix(s, "+") {
		return "", fmt.Errorf("%q must be in international form (+ and country code)", clipValue(s))
	}
	if region == "" {
		region = "ZZ"
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return "", fmt.Errorf("%q is not a phone number", clipValue(s))
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%q is not a valid phone number", clipValue(s))
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

func (r Rules) webhookURL(fe *FieldErrors, field, raw string) {
	if raw == "" {
		fe.Addf(field, "is required for channel webhook")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		fe.Addf(field, "is not an absolute URL")
	case u.Scheme != "https" && !(u.Scheme == "http" && r.AllowHTTPWebhooks):
		fe.Addf(field, "must be an https URL")
	case u.User != nil:
		fe.Addf(field, "must not carry credentials (sign with the secret instead)")
	case u.Fragment != "":
		fe.Addf(field, "must not have a fragment")
	case len(raw) > 2048:
		fe.Addf(field, "is longer than 2048 bytes")
	case r.WebhookURL != nil:
		if err := r.WebhookURL(raw); err != nil {
			fe.Addf(field, "is refused: %v", err)
		}
	}
}

func (r Rules) webhookSecret(fe *FieldErrors, field string, v secret.Value) {
	if r.WebhookSecret == nil || v.IsZero() {
		checkWebhookSecret(fe, field, v)
		return
	}
	if err := r.WebhookSecret(v.Reveal()); err != nil {
		fe.Addf(field, "is refused: %v", err)
	}
}

// checkWebhookSecret checks a Standard Webhooks secret: "whsec_" followed by
// the base64 of 24 to 64 random bytes. The message never echoes the secret.
func checkWebhookSecret(fe *FieldErrors, field string, v secret.Value) {
	s := v.Reveal()
	if s == "" {
		fe.Addf(field, `is required for channel webhook ("whsec_" + base64 of 24 to 64 random bytes)`)
		return
	}
	raw, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		fe.Addf(field, `must start with "whsec_"`)
		return
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		fe.Addf(field, `must be "whsec_" followed by standard base64`)
		return
	}
	if len(key) < 24 || len(key) > 64 {
		fe.Addf(field, "must encode 24 to 64 bytes (has %d)", len(key))
	}
}

func (r Rules) slack(fe *FieldErrors, path string, ep *Endpoint) {
	hook, ch := ep.WebhookURL.Reveal(), ep.SlackChannel
	switch {
	case hook == "" && ch == "":
		fe.Addf(path, "channel slack needs webhook_url (an incoming webhook) or slack_channel (a channel id for the bot)")
	case hook != "" && ch != "":
		fe.Addf(path, "give webhook_url or slack_channel, not both")
	case hook != "":
		hosts := r.SlackWebhookHosts
		if len(hosts) == 0 {
			hosts = defaultSlackWebhookHosts
		}
		if r.SlackWebhook != nil {
			if err := r.SlackWebhook(hook); err != nil {
				fe.Addf(path+".webhook_url", "is refused: %v", err)
			}
			return
		}
		u, err := url.Parse(hook)
		// The URL is a credential: never echo it.
		switch {
		case err != nil || u.Host == "":
			fe.Addf(path+".webhook_url", "is not an absolute URL")
		case u.Scheme != "https" && !(u.Scheme == "http" && r.AllowHTTPWebhooks):
			fe.Addf(path+".webhook_url", "must be an https URL")
		case !slices.Contains(hosts, strings.ToLower(u.Host)):
			fe.Addf(path+".webhook_url", "must be a Slack incoming-webhook URL (host %s)", strings.Join(hosts, " or "))
		}
	default:
		valid := slackChannelPattern.MatchString
		if r.SlackChannel != nil {
			valid = r.SlackChannel
		}
		if !valid(ch) {
			fe.Addf(path+".slack_channel", "%q is not a Slack channel id (such as C0123ABCD)", clipValue(ch))
		}
	}
}

func (r Rules) components(fe *FieldErrors, field string, ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxComponents {
		fe.Addf(field, "must list at most %d components", MaxComponents)
		return nil
	}
	out := make([]string, 0, len(ids))
	for i, id := range ids {
		id = strings.TrimSpace(id)
		switch {
		case !incident.ValidComponentID(id):
			fe.Addf(fmt.Sprintf("%s[%d]", field, i), "%q is not a component id", clipValue(id))
		case r.Components != nil && !r.Components.Known(id):
			fe.Addf(fmt.Sprintf("%s[%d]", field, i), "unknown component %q (known: %s)", clipValue(id), strings.Join(r.Components.IDs(), ", "))
		default:
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func checkPriority(fe *FieldErrors, field string, p incident.Priority) {
	if p != "" && !p.Valid() {
		fe.Addf(field, "must be one of P1, P2, P3, P4")
	}
}

func checkStatuses(fe *FieldErrors, field string, sts []incident.Status) []incident.Status {
	if len(sts) == 0 {
		return nil
	}
	out := make([]incident.Status, 0, len(sts))
	for i, st := range sts {
		if !st.Valid() {
			names := make([]string, 0, 8)
			for _, s := range incident.Statuses() {
				names = append(names, string(s))
			}
			fe.Addf(fmt.Sprintf("%s[%d]", field, i), "%q must be one of %s", clipValue(string(st)), strings.Join(names, ", "))
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b incident.Status) int { return a.Index() - b.Index() })
	return slices.Compact(out)
}

func checkLabel(fe *FieldErrors, field, s string, maxRunes int) {
	if !utf8.ValidString(s) {
		fe.Addf(field, "must be valid UTF-8")
		return
	}
	if utf8.RuneCountInString(s) > maxRunes {
		fe.Addf(field, "must be at most %d characters", maxRunes)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		fe.Addf(field, "must not contain control characters")
	}
}

// clipValue shortens a value echoed in an error message.
func clipValue(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > 80 {
		return s[:byteIndex(s, 77)] + "..."
	}
	return s
}

func byteIndex(s string, runes int) int {
	i := 0
	for j := range s {
		if i == runes {
			return j
		}
		i++
	}
	return len(s)
}

// clock parses "HH:MM" into minutes after midnight.
func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("bad clock %q", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// LoadLocation loads an IANA time zone; "" and "UTC" are UTC. Unlike
// [time.LoadLocation] it refuses "Local", whose meaning depends on the
// machine.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("time zone %q depends on the machine", name)
	}
	return time.LoadLocation(name)
}
