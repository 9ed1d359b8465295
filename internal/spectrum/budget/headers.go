package budget

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// budgetReport is what one response says about one of the user's budgets:
// an item of the Ratelimit header, with the Ratelimit-Policy item of the
// same name.
//
// Cloudflare sends the IETF draft's headers (its changelog of 2025-09-03):
//
//	Ratelimit: "default";r=50;t=30
//	Ratelimit-Policy: "default";q=1200;w=300
//
// r is the requests remaining, t the seconds until the window resets, q
// the quota and w the window in seconds. Each header is a Structured Field
// list (RFC 9651) and may hold several items, one per policy.
type budgetReport struct {
	name string
	// remaining is r.
	remaining int
	// reset is t; resetKnown is false when the item has no t.
	reset      time.Duration
	resetKnown bool
	// quota (q) and window (w) come from the policy of the same name; zero
	// when unknown.
	quota  int
	window time.Duration
}

// maxBudgetItems bounds the items read from one header: a real response
// names one or two policies, and a broken or hostile one must not cost
// more than that.
const maxBudgetItems = 16

// parseRateLimitHeaders reads the Ratelimit and Ratelimit-Policy headers.
// Items without a usable r are left out, as are members that do not parse,
// parameters it does not know and values out of range: what it returns is
// what can be trusted.
func parseRateLimitHeaders(header http.Header) []budgetReport {
	items := parseSFList(strings.Join(header.Values("Ratelimit"), ","))
	if len(items) == 0 {
		return nil
	}
	policies := parseSFList(strings.Join(header.Values("Ratelimit-Policy"), ","))
	var reports []budgetReport
	for _, item := range items {
		r, ok := item.count("r")
		if !ok {
			continue
		}
		report := budgetReport{name: item.name, remaining: r}
		if t, ok := item.seconds("t"); ok {
			report.reset, report.resetKnown = t, true
		}
		// The draft links a policy to its item by name; a lone item and a
		// lone policy are taken to belong together whatever they are called.
		for _, p := range policies {
			if p.name == item.name || (len(items) == 1 && len(policies) == 1) {
				report.quota, _ = p.count("q")
				report.window, _ = p.seconds("w")
				break
			}
		}
		reports = append(reports, report)
	}
	return reports
}

// sfItem is a member of a Structured Field list: its name (a string or a
// token) and its numeric parameters. Other parameters are dropped.
type sfItem struct {
	name   string
	params map[string]float64
}

// maxSFNumber is RFC 9651's largest integer: anything larger is not a
// Structured Field number.
const maxSFNumber = 999_999_999_999_999

// count reads a parameter as a non-negative whole count (a decimal is
// rounded down).
func (it sfItem) count(key string) (int, bool) {
	v, ok := it.params[key]
	if !ok || v < 0 {
		return 0, false
	}
	return int(math.Min(math.Floor(v), math.MaxInt32)), true
}

// seconds reads a parameter as a non-negative number of seconds, at most
// a day (a longer window or wait is not something to plan with).
func (it sfItem) seconds(key string) (time.Duration, bool) {
	v, ok := it.params[key]
	if !ok || v < 0 {
		return 0, false
	}
	return time.Duration(math.Min(v, 86400) * float64(time.Second)), true
}

// parseSFList parses a Structured Field list leniently: a member that does
// not parse is skipped (the rest still count), and so is a member that is
// not an item named by a string or token (an inner list, a number).
func parseSFList(field string) []sfItem {
	var items []sfItem
	p := sfParser{s: field}
	for len(items) < maxBudgetItems {
		p.skipSpace()
		if p.done() {
			break
		}
		start := p.i
		item, ok := p.item()
		p.skipSpace()
		if ok && (p.done() || p.peek() == ',') {
			items = append(items, item)
		} else {
			p.i = start
			p.skipMember()
		}
		if p.done() {
			break
		}
		p.i++ // the comma
	}
	return items
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }
func (p *sfParser) peek() byte { return p.s[p.i] }

func (p *sfParser) skipSpace() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

// skipMember moves to the comma that ends the member (outside a quoted
// string), or to the end.
func (p *sfParser) skipMember() {
	quoted := false
	for ; !p.done(); p.i++ {
		switch c := p.peek(); {
		case quoted && c == '\\':
			p.i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return
		}
	}
}

// item parses a bare item naming the member, then its parameters.
func (p *sfParser) item() (sfItem, bool) {
	var item sfItem
	if p.done() {
		return item, false
	}
	switch c := p.peek(); {
	case c == '"':
		name, ok := p.str()
		if !ok {
			return item, false
		}
		item.name = name
	case isAlpha(c) || c == '*':
		item.name = p.token()
	default:
		return item, false
	}
	for {
		// RFC 9651 allows no space before a ';'; some servers send one.
		p.skipSpace()
		if p.done() || p.peek() != ';' {
			break
		}
		p.i++
		p.skipSpaces()
		key, ok := p.key()
		if !ok {
			return item, false
		}
		value, numeric := 1.0, false // a bare key is boolean true
		if !p.done() && p.peek() == '=' {
			p.i++
			if value, numeric, ok = p.bareValue(); !ok {
				return item, false
			}
		}
		if item.params == nil {
			item.params = map[string]float64{}
		}
		// The last value of a key wins (RFC 9651 4.2.3.2); one that is not
		// a number removes an earlier one.
		delete(item.params, key)
		if numeric {
			item.params[key] = value
		}
	}
	return item, true
}

// skipSpaces skips the spaces RFC 9651 allows after a ';'.
func (p *sfParser) skipSpaces() {
	for !p.done() && p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) key() (string, bool) {
	start := p.i
	if p.done() || !(isLowerAlpha(p.peek()) || p.peek() == '*') {
		return "", false
	}
	for !p.done() {
		c := p.peek()
		if !(isLowerAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// bareValue parses a parameter's value: numbers are returned, strings,
// tokens, booleans and byte sequences are consumed and reported as not
// numeric.
func (p *sfParser) bareValue() (float64, bool, bool) {
	if p.done() {
		return 0, false, false
	}
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		v, ok := p.number()
		return v, ok, ok
	case c == '"':
		_, ok := p.str()
		return 0, false, ok
	case isAlpha(c) || c == '*':
		p.token()
		return 0, false, true
	case c == '?':
		p.i++
		if p.done() || (p.peek() != '0' && p.peek() != '1') {
			return 0, false, false
		}
		p.i++
		return 0, false, true
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return 0, false, false
		}
		p.i += end + 2
		return 0, false, true
	}
	return 0, false, false
}

// number parses an RFC 9651 integer or decimal.
func (p *sfParser) number() (float64, bool) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits, fraction, dot := 0, 0, false
scan:
	for ; !p.done(); p.i++ {
		switch c := p.peek(); {
		case isDigit(c) && !dot:
			digits++
		case isDigit(c) && dot:
			fraction++
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			break scan
		}
	}
	if digits == 0 || digits > 15 || (dot && (fraction == 0 || fraction > 3 || digits > 12)) {
		return 0, false
	}
	v, err := strconv.ParseFloat(p.s[start:p.i], 64)
	return v, err == nil && math.Abs(v) <= maxSFNumber
}

// str parses a quoted string with its \" and \\ escapes.
func (p *sfParser) str() (string, bool) {
	var b strings.Builder
	for p.i++; !p.done(); p.i++ {
		c := p.peek()
		switch {
		case c == '\\':
			p.i++
			if p.done() || (p.peek() != '"' && p.peek() != '\\') {
				return "", false
			}
			b.WriteByte(p.peek())
		case c == '"':
			p.i++
			return b.String(), true
		case c < 0x20 || c > 0x7e:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// token parses a token: tchar, ':' and '/' after its first character.
func (p *sfParser) token() string {
	start := p.i
	for p.i++; !p.done(); p.i++ {
		c := p.peek()
		if !(isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~:/", c) >= 0) {
			break
		}
	}
	return p.s[start:p.i]
}

func isAlpha(c byte) bool      { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isLowerAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
