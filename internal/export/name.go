package export

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// maxNameLength keeps names within a DNS-1123 label (63), not the longer
// subdomain limit a SpectrumApp's name allows: tools commonly copy an
// object's name into a label value, which may not be longer.
const maxNameLength = 63

// hashLength is how many hex digits of the SHA-256 of hostname and protocol
// make a name unique when it had to be shortened or collided.
const hashLength = 8

// BaseName is the name an application gets from its hostname and protocol:
// "ssh.example.com" and "tcp/22" give "ssh-example-com-tcp-22". Every
// character that a DNS-1123 label does not allow becomes a dash; a wildcard
// label "*" becomes "wildcard". A name longer than 63 characters is cut and
// ends with a short hash of hostname and protocol, so it stays unique.
func BaseName(hostname, protocol string) string {
	host := spectrum.NormalizeHostname(hostname)
	if host == "*" || strings.HasPrefix(host, "*.") {
		host = "wildcard" + strings.TrimPrefix(host, "*")
	}
	name := sanitize(host + "-" + strings.ToLower(strings.TrimSpace(protocol)))
	if name == "" {
		return "app-" + hash(hostname, protocol)
	}
	if len(name) > maxNameLength {
		return withHash(name, hostname, protocol)
	}
	return name
}

// Names returns a name for each key (hostname and protocol), unique among
// them: two applications whose base names collide (a-b.example.com and
// a.b.example.com both give a-b-example-com-...) both get a hash suffix.
// The names depend only on the keys, not on their order.
func Names(keys []Key) []string {
	names := make([]string, len(keys))
	count := map[string]int{}
	for i, k := range keys {
		names[i] = BaseName(k.Hostname, k.Protocol)
		count[names[i]]++
	}
	for i, k := range keys {
		if count[names[i]] > 1 {
			names[i] = withHash(names[i], k.Hostname, k.Protocol)
		}
	}
	return names
}

// Key identifies an application the way the operator adopts it.
type Key struct {
	Hostname, Protocol string
}

func withHash(name, hostname, protocol string) string {
	suffix := "-" + hash(hostname, protocol)
	if len(name)+len(suffix) > maxNameLength {
		name = strings.TrimRight(name[:maxNameLength-len(suffix)], "-")
	}
	return name + suffix
}

func hash(hostname, protocol string) string {
	sum := sha256.Sum256([]byte(spectrum.NormalizeHostname(hostname) + "/" + strings.ToLower(strings.TrimSpace(protocol))))
	return hex.EncodeToString(sum[:])[:hashLength]
}

// sanitize keeps [a-z0-9], turns every run of other characters into one
// dash, and trims dashes at either end.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}
