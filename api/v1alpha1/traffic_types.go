package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Traffic is the application's traffic as Cloudflare's Spectrum analytics
// last reported it. The operator reads it for every application of a zone
// at once, in one request of Cloudflare's per-minute series
// (GET /zones/{zone_id}/spectrum/analytics/events/bytime, time_delta=minute,
// by appID and event), at most once a minute and less often when the API
// token's budget is busy (--analytics-budget-share). It writes the numbers
// here when they change, and at least every ten minutes while they do not.
// The series are in whole minutes (UTC): the window ends at the last whole
// minute before readAt.
type Traffic struct {
	// Connections is how many clients connected to the application in the
	// window's last minute: the count of its connect events.
	Connections int64 `json:"connections"`

	// BytesIngress is how many bytes clients sent to the application in
	// that minute: the sum of bytesIngress over its events.
	BytesIngress int64 `json:"bytesIngress"`

	// BytesEgress is how many bytes the application sent to clients in
	// that minute: the sum of bytesEgress over its events.
	BytesEgress int64 `json:"bytesEgress"`

	// Connects is how many clients connected to the application at
	// Cloudflare's edge over the whole window: the count of connect events.
	Connects int64 `json:"connects"`

	// OriginErrors is how many connections Cloudflare could not open to an
	// origin over the same window: the count of originError events. The
	// OriginsHealthy condition compares it with connects.
	OriginErrors int64 `json:"originErrors"`

	// WindowSeconds is the length of the window (300: five minutes).
	WindowSeconds int32 `json:"windowSeconds"`

	// ReadAt is when the operator read these numbers from Cloudflare.
	ReadAt metav1.Time `json:"readAt"`
}

// ConditionOriginsHealthy says whether Cloudflare reaches the application's
// origins, from its analytics: True when few connections failed to reach an
// origin over the last few minutes, False when at least one in ten did
// (reason OriginErrors), Unknown when there was no traffic to tell
// (NoTraffic) or the operator may not read the analytics
// (AnalyticsNotPermitted). The message gives the numbers. It is about
// traffic only: Ready stays about configuration, and an app whose origins
// fail is still Ready.
const ConditionOriginsHealthy = "OriginsHealthy"

// Reasons of the OriginsHealthy condition, and of the Events told when it
// turns False (OriginErrors, a Warning) and back to True (OriginsRecovered).
const (
	ReasonOriginsAnswering      = "OriginsAnswering"
	ReasonOriginErrors          = "OriginErrors"
	ReasonOriginsRecovered      = "OriginsRecovered"
	ReasonNoTraffic             = "NoTraffic"
	ReasonAnalyticsNotPermitted = "AnalyticsNotPermitted"
)
