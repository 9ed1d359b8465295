package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types, in the kstatus vocabulary that kubectl wait, Flux and
// Argo CD understand.
const (
	// ConditionReady is True when the Cloudflare application matches the spec.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is working on the
	// application or waiting to retry a temporary failure.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress until a
	// person acts: the message says what to do.
	ConditionStalled = "Stalled"
)

const (
	// Finalizer keeps a SpectrumApp until its Cloudflare application is
	// deleted (or orphaned, per deletionPolicy).
	Finalizer = "spectrum.cloudflare-operator.io/finalizer"

	// ReconcileRequestedAtAnnotation asks the operator to retry now, even when
	// the app is Stalled: set it to any new value, such as the current time
	// (kubectl annotate spectrumapp NAME
	// spectrum.cloudflare-operator.io/reconcile-requested-at="$(date +%s)" --overwrite).
	ReconcileRequestedAtAnnotation = "spectrum.cloudflare-operator.io/reconcile-requested-at"

	// AccountPlanAnnotation, on a credentials Secret, tells the operator the
	// Cloudflare account's plan ("enterprise" or "pay-as-you-go"), so that
	// admission can reject what a Pay-as-you-go account refuses.
	AccountPlanAnnotation = "spectrum.cloudflare-operator.io/account-plan"

	// CredentialsLabel, set to "true" on a Secret, marks it as Cloudflare
	// credentials for the operator (kubectl label secret NAME
	// spectrum.cloudflare-operator.io/credentials=true). The operator reads
	// no other Secret's data, and a SpectrumApp naming an unmarked Secret
	// stalls: a Secret put in a namespace for something else never becomes
	// a Spectrum token by being named.
	CredentialsLabel = "spectrum.cloudflare-operator.io/credentials"

	// DefaultCredentialsKey is the Secret key read when credentialsRef.key is
	// empty.
	DefaultCredentialsKey = "apiToken"

	// AdoptApplicationIDAnnotation asks a SpectrumApp to take over an
	// application that already exists at Cloudflare with its hostname and
	// protocol (made in the dashboard, with Terraform or by another
	// cluster), as Crossplane's external-name does: its value is that
	// application's ID. Without it, such an application is never adopted
	// (the SpectrumApp stalls, reason ApplicationExists, naming the ID),
	// unless this SpectrumApp's own create made it. kubectl spectrum export
	// writes it.
	AdoptApplicationIDAnnotation = "spectrum.cloudflare-operator.io/adopt-application-id"

	// ReconcilePolicyAnnotation says how far the operator manages the app:
	// ReconcilePolicyManage (the default), ReconcilePolicyObserve or
	// ReconcilePolicySkip.
	ReconcilePolicyAnnotation = "spectrum.cloudflare-operator.io/reconcile-policy"

	// CreatePendingAnnotation is the operator's durable create record: the
	// time (RFC 3339) at which it was about to ask Cloudflare to create the
	// application, written before the create is sent. status.createSettled
	// settles it once the outcome is known (the ID is recorded, or
	// Cloudflare refused). A record not yet settled means a create may have
	// been applied without its answer arriving: the operator looks for that
	// application by hostname and protocol instead of creating a second,
	// and deleting the SpectrumApp deletes what it finds. Set by the
	// operator only.
	CreatePendingAnnotation = "spectrum.cloudflare-operator.io/create-pending"
)

// Values of ReconcilePolicyAnnotation.
const (
	// ReconcilePolicyManage creates, updates and deletes the Cloudflare
	// application.
	ReconcilePolicyManage = "manage"
	// ReconcilePolicyObserve only reads it: status says whether it matches
	// the spec and which fields differ. Nothing is written at Cloudflare,
	// and deleting the SpectrumApp leaves the application in place.
	ReconcilePolicyObserve = "observe"
	// ReconcilePolicySkip makes no Cloudflare call at all; deleting the
	// SpectrumApp leaves the application in place.
	ReconcilePolicySkip = "skip"
)

// AccountPlan is a Cloudflare account's Spectrum plan.
type AccountPlan string

const (
	// PlanEnterprise accounts may use every Spectrum field.
	PlanEnterprise AccountPlan = "enterprise"
	// PlanPayAsYouGo accounts (without the paid add-on) may send only
	// protocol, dns and originDirect, and have one application per protocol.
	PlanPayAsYouGo AccountPlan = "pay-as-you-go"
)

// IsCredentialsSecret reports whether a Secret carries CredentialsLabel.
func IsCredentialsSecret(secret metav1.Object) bool {
	return secret.GetLabels()[CredentialsLabel] == "true"
}

// Condition reasons that are not Cloudflare's. A failure Cloudflare answered
// has the reason of its row in the operator's classification table (such as
// ArgoNotEnabled or HostnameInAnotherZone, listed in docs/runbook.md); every
// other reason a condition or an Event can carry is one of these.
const (
	// ReasonSynced: Ready, the application matches the spec.
	ReasonSynced = "Synced"
	// ReasonObserved: Ready under the observe policy, the application
	// matches the spec.
	ReasonObserved = "Observed"
	// ReasonOutOfSync: observe policy, the application differs from the
	// spec in the fields status.differences names.
	ReasonOutOfSync = "OutOfSync"
	// ReasonNotFound: observe policy, no application has the spec's
	// hostname and protocol.
	ReasonNotFound = "NotFound"
	// ReasonReconcileSkipped: skip policy, nothing was looked at.
	ReasonReconcileSkipped = "ReconcileSkipped"

	// ReasonInvalidSpec: the spec breaks a rule Cloudflare enforces and
	// admission was bypassed; nothing was sent.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonInvalidReconcilePolicy: the reconcile-policy annotation has a
	// value the operator does not know; nothing was sent.
	ReasonInvalidReconcilePolicy = "InvalidReconcilePolicy"

	// ReasonCreateUnconfirmed: a create whose answer was lost may still
	// land; the operator waits until it would have before creating again.
	ReasonCreateUnconfirmed = "CreateUnconfirmed"
	// ReasonWaitingForTurn: a request waits for its turn in the API
	// token's request budget.
	ReasonWaitingForTurn = "WaitingForTurn"
	// ReasonApplicationExists: an application made by someone else has the
	// spec's hostname and protocol, and adoption was not asked for.
	ReasonApplicationExists = "ApplicationExists"
	// ReasonApplicationClaimed: another SpectrumApp manages the application
	// this one would adopt.
	ReasonApplicationClaimed = "ApplicationClaimed"
	// ReasonZoneNotFound: no zone of spec.zoneName is visible to the token.
	ReasonZoneNotFound = "ZoneNotFound"

	// Credentials the operator could not use, found before any request.
	ReasonCredentialsNotConfigured   = "CredentialsNotConfigured"
	ReasonCredentialsSecretNotFound  = "CredentialsSecretNotFound"
	ReasonCredentialsKeyMissing      = "CredentialsKeyMissing"
	ReasonCredentialsSecretForbidden = "CredentialsSecretForbidden"
	ReasonCredentialsTokenMalformed  = "CredentialsTokenMalformed"
	ReasonCredentialsSecretNotMarked = "CredentialsSecretNotMarked"
	ReasonCredentialsNotGranted      = "CredentialsNotGranted"

	// Failures talking to Cloudflare that no row of the table names.
	ReasonNetworkError           = "NetworkError"
	ReasonRateLimited            = "RateLimited"
	ReasonUnexpectedResponse     = "UnexpectedResponse"
	ReasonUnknownCloudflareError = "UnknownCloudflareError"
	ReasonUnexpectedError        = "UnexpectedError"
	ReasonCloudflareUnavailable  = "CloudflareUnavailable"
	ReasonUnreadableApplication  = "UnreadableApplication"
)
