package v1alpha1

import (
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ReconcilePolicies are the values of ReconcilePolicyAnnotation the operator
// knows, the default first.
var ReconcilePolicies = []string{ReconcilePolicyManage, ReconcilePolicyObserve, ReconcilePolicySkip}

// IsReconcilePolicy reports whether policy is one of ReconcilePolicies.
func IsReconcilePolicy(policy string) bool { return slices.Contains(ReconcilePolicies, policy) }

// Policy is the app's reconcile policy: the ReconcilePolicyAnnotation's
// value, ReconcilePolicyManage when it is unset or empty. It may be one the
// operator does not know (IsReconcilePolicy), when admission was bypassed.
func (a *SpectrumApp) Policy() string { return PolicyOf(a.Annotations) }

// PolicyOf is the reconcile policy of an app with these annotations
// (SpectrumApp.Policy).
func PolicyOf(annotations map[string]string) string {
	if policy := annotations[ReconcilePolicyAnnotation]; policy != "" {
		return policy
	}
	return ReconcilePolicyManage
}

// CreateRecord is the time CreatePendingAnnotation records, nil when it is
// absent or not a time (the operator alone writes it).
func (a *SpectrumApp) CreateRecord() *metav1.Time {
	value, ok := a.Annotations[CreatePendingAnnotation]
	if !ok {
		return nil
	}
	at, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return nil
	}
	recorded := metav1.NewTime(at)
	return &recorded
}

// UnsettledCreate is when a create whose outcome the operator has not seen
// was recorded: the create record, unless status.createSettled settles it,
// or else the record earlier operator versions kept in status.pendingCreate.
// Nil when no create is unsettled.
func (a *SpectrumApp) UnsettledCreate() *metav1.Time {
	if record := a.CreateRecord(); record != nil {
		if settled := a.Status.CreateSettled; settled == nil || settled.Before(record) {
			return record
		}
	}
	return a.Status.PendingCreate
}

// SettleCreate records in status that the outcome of the unsettled create,
// if any, is known.
func (a *SpectrumApp) SettleCreate() {
	if record := a.CreateRecord(); record != nil {
		a.Status.CreateSettled = record
	}
	a.Status.PendingCreate = nil
}

// SecretKey names a key of a Secret.
//
// +kubebuilder:object:generate=false
type SecretKey struct {
	types.NamespacedName
	Key string
}

// CredentialsSecret is the Secret, and the key in it, that the app's API
// token comes from: spec.credentialsRef, in the app's namespace, or else
// defaults (the operator's --default-credentials-secret). The key is
// DefaultCredentialsKey when none is given. The name is empty when the app
// has no credentialsRef and the operator no default.
func (a *SpectrumApp) CredentialsSecret(defaults SecretKey) SecretKey {
	secret := defaults
	if ref := a.Spec.CredentialsRef; ref != nil {
		secret = SecretKey{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: ref.Name}, Key: ref.Key}
	}
	if secret.Key == "" {
		secret.Key = DefaultCredentialsKey
	}
	return secret
}

// UsesDefaultCredentials reports whether the app takes its token from the
// operator's default credentials Secret.
func (a *SpectrumApp) UsesDefaultCredentials() bool { return a.Spec.CredentialsRef == nil }

// CloudflareZoneID is the ID of the app's zone as far as the object tells:
// spec.zoneID, or the ID status records for spec.zoneName once the
// operator looked it up; empty before that.
func (a *SpectrumApp) CloudflareZoneID() string {
	if a.Spec.ZoneID != "" {
		return a.Spec.ZoneID
	}
	return a.Status.ZoneID
}

// Zone is the zone as the spec names it: its ID, or else its name.
func (s *SpectrumAppSpec) Zone() string {
	if s.ZoneID != "" {
		return s.ZoneID
	}
	return s.ZoneName
}

// ReadyAt reports whether the app's Ready condition is True for the given
// generation of its spec.
func (a *SpectrumApp) ReadyAt(generation int64) bool {
	ready := meta.FindStatusCondition(a.Status.Conditions, ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == generation
}
