package spectrum

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
)

// The API has changed shape over the years and apps created long ago still
// come back in the old shapes (see "Responses in the wild" in the API notes).
// These codecs accept every shape seen so that adopting or resyncing an old
// app never fails on decoding, and always send the current shape.

// ParseOriginPort parses "22" or "3000-4000", with the rules' parser. Blanks
// are ignored: what Cloudflare returns is read leniently.
func ParseOriginPort(s string) (OriginPort, error) {
	first, last, err := rules.ParsePortRange(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return OriginPort{}, fmt.Errorf("origin port %q: %w", s, err)
	}
	if last == first {
		return OriginPort{Start: first}, nil
	}
	return OriginPort{Start: first, End: last}, nil
}

// IsRange reports whether the port is a range of more than one port.
func (p OriginPort) IsRange() bool { return p.End != 0 && p.End != p.Start }

// String returns "22" or "3000-4000".
func (p OriginPort) String() string {
	if p.IsRange() {
		return fmt.Sprintf("%d-%d", p.Start, p.End)
	}
	return strconv.Itoa(p.Start)
}

// MarshalJSON sends a single port as a number and a range as a string, the
// shapes the API schema documents.
func (p OriginPort) MarshalJSON() ([]byte, error) {
	if p.IsRange() {
		return json.Marshal(p.String())
	}
	return []byte(strconv.Itoa(p.Start)), nil
}

// UnmarshalJSON accepts a number (22), a numeric string ("22") or a range
// string ("2022-2023").
func (p *OriginPort) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		parsed, err := ParseOriginPort(s)
		if err != nil {
			return err
		}
		*p = parsed
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("origin_port must be a number or a string, got %.40s", data)
	}
	port, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || port != float64(int(port)) || port < 0 || port > 65535 {
		return fmt.Errorf("origin_port %s is not a port number", n)
	}
	*p = OriginPort{Start: int(port)}
	return nil
}

// UnmarshalJSON decodes an app, accepting proxy_protocol as the legacy
// boolean (true meant v1, false meant off) as well as the current string.
// Unknown fields such as the legacy "ipv4" and "spp" are ignored.
func (a *App) UnmarshalJSON(data []byte) error {
	// appFields has App's fields but not its methods, so decoding into it
	// does not recurse into this function.
	type appFields App
	var wire struct {
		appFields
		// Shallower than the embedded field of the same JSON name, so it wins.
		ProxyProtocol json.RawMessage `json:"proxy_protocol"`
	}
	if err := json.Unmarshal(data, &wire); err != nil {
		return err
	}
	proxyProtocol, err := decodeProxyProtocol(wire.ProxyProtocol)
	if err != nil {
		return err
	}
	*a = App(wire.appFields)
	a.ProxyProtocol = proxyProtocol
	repeats.share(a)
	return nil
}

func decodeProxyProtocol(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null":
		return "", nil
	case "true":
		return "v1", nil
	case "false":
		return "off", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("proxy_protocol must be a string or a boolean, got %.40s", raw)
	}
	return s, nil
}
