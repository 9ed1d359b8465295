package controller

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// A rule added in a later release must not stall an app whose spec
// Cloudflare accepted and which did not change since; a changed spec is
// checked again. (The spec below breaks a rule today's rule set has, which
// stands in for one a future release adds.)
func TestCheckSpecSparesASpecCloudflareAccepted(t *testing.T) {
	invalid := func(generation, synced int64) *v1alpha1.SpectrumApp {
		return &v1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Generation: generation},
			Spec: v1alpha1.SpectrumAppSpec{
				ZoneID: "0123456789abcdef0123456789abcdef", Protocol: "tcp/22",
				DNS:          v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
				OriginDirect: []string{"tcp://2001:db8::1:22"},
			},
			Status: v1alpha1.SpectrumAppStatus{SyncedGeneration: synced},
		}
	}
	r := &SpectrumAppReconciler{}
	cases := []struct {
		name              string
		generation, synce int64
		stalls            bool
	}{
		{"never synced", 1, 0, true},
		{"synced at this generation", 3, 3, false},
		{"spec changed since it synced", 4, 3, true},
	}
	for _, tc := range cases {
		stall := r.checkSpec(invalid(tc.generation, tc.synce))
		if (stall != nil) != tc.stalls {
			t.Errorf("%s: checkSpec = %v, want a stall: %v", tc.name, stall, tc.stalls)
		}
		if stall != nil && (stall.Class != failure.InvalidSpec || stall.Reason != v1alpha1.ReasonInvalidSpec) {
			t.Errorf("%s: classified %v %s", tc.name, stall.Class, stall.Reason)
		}
	}
}

// A credentials Secret the operator may not read (RBAC) needs a person, and
// says so; it is not retried forever as if it were a blip.
func TestSecretErrors(t *testing.T) {
	name := types.NamespacedName{Namespace: "team-a", Name: "cloudflare"}
	secrets := schema.GroupResource{Resource: "secrets"}
	cases := []struct {
		name   string
		err    error
		class  failure.Class
		reason string
	}{
		{"forbidden", apierrors.NewForbidden(secrets, "cloudflare", nil), failure.NeedsHuman, v1alpha1.ReasonCredentialsSecretForbidden},
		{"not found", apierrors.NewNotFound(secrets, "cloudflare"), failure.NeedsHuman, v1alpha1.ReasonCredentialsSecretNotFound},
		{"apiserver busy", apierrors.NewTooManyRequests("busy", 1), failure.Retryable, v1alpha1.ReasonUnexpectedError},
	}
	for _, tc := range cases {
		got := spectrum.Classify(secretError(name, tc.err))
		if got.Class != tc.class || got.Reason != tc.reason {
			t.Errorf("%s: classified %v %s, want %v %s", tc.name, got.Class, got.Reason, tc.class, tc.reason)
		}
	}
}
