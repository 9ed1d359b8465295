package spectrum

import "fmt"

// ClaimedError says the Cloudflare application an app would adopt is
// already managed by another SpectrumApp: two SpectrumApps name the same
// zone, hostname and protocol.
type ClaimedError struct {
	// ApplicationID is the Cloudflare application both would manage.
	ApplicationID string
	// Owner is the SpectrumApp that manages it, as namespace/name.
	Owner string
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("Cloudflare application %s, with the same hostname and protocol, is already managed by SpectrumApp %s", e.ApplicationID, e.Owner)
}

// ReasonApplicationClaimed is the reason of a ClaimedError.
const ReasonApplicationClaimed = "ApplicationClaimed"

// claimedEntry is the classification of a ClaimedError: only a person can
// say which SpectrumApp should own the application.
var claimedEntry = entry{class: NeedsHuman, reason: ReasonApplicationClaimed,
	resolution: "Delete one of the two SpectrumApps, or give this one another dns.name or protocol."}
