package v1alpha1

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// These tests drive the validator directly with a fake client, for the plan
// lookup branches the apiserver suite does not reach (the operator's default
// plan, warnings).

func app(name, protocol, secret string) *spectrumv1alpha1.SpectrumApp {
	a := &spectrumv1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
		Spec: spectrumv1alpha1.SpectrumAppSpec{
			ZoneID:       zoneID,
			Protocol:     protocol,
			DNS:          spectrumv1alpha1.DNS{Type: "CNAME", Name: name + ".example.com"},
			OriginDirect: []string{"tcp://192.0.2.1:" + strings.TrimPrefix(protocol, "tcp/")},
		},
	}
	if secret != "" {
		a.Spec.CredentialsRef = &spectrumv1alpha1.SecretKeyReference{Name: secret}
	}
	return a
}

func secretWithPlan(name, plan string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name}}
	if plan != "" {
		s.Annotations = map[string]string{spectrumv1alpha1.AccountPlanAnnotation: plan}
	}
	return s
}

func validator(t *testing.T, def spectrumv1alpha1.AccountPlan, objs ...client.Object) *SpectrumAppCustomValidator {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := spectrumv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	claims := newClaimRegistry()
	for _, obj := range objs {
		claims.OnAdd(obj, true)
	}
	return &SpectrumAppCustomValidator{
		Client:      fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(),
		DefaultPlan: def,
		claims:      claims,
	}
}

func codesOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want Invalid, got %v", err)
	}
	var codes []string
	for _, c := range err.(apierrors.APIStatus).Status().Details.Causes {
		i := strings.LastIndex(c.Message, "(Cloudflare error ")
		codes = append(codes, c.Field+" "+strings.TrimSuffix(c.Message[i+len("(Cloudflare error "):], ")"))
	}
	return strings.Join(codes, ", ")
}

func TestPlanLookup(t *testing.T) {
	ctx := context.Background()
	withTLS := func(a *spectrumv1alpha1.SpectrumApp) *spectrumv1alpha1.SpectrumApp {
		a.Spec.TLS = "off"
		return a
	}
	cases := []struct {
		name        string
		def         spectrumv1alpha1.AccountPlan
		objs        []client.Object
		app         *spectrumv1alpha1.SpectrumApp
		wantCodes   string
		wantWarning string
	}{
		{"no credentialsRef uses the default plan", spectrumv1alpha1.PlanPayAsYouGo, nil,
			withTLS(app("ssh", "tcp/22", "")), "spec.tls 10012", ""},
		{"empty default means enterprise", "", nil,
			withTLS(app("ssh", "tcp/22", "")), "", ""},
		{"annotation beats the default", spectrumv1alpha1.PlanPayAsYouGo,
			[]client.Object{secretWithPlan("creds", "enterprise")},
			withTLS(app("ssh", "tcp/22", "creds")), "", ""},
		{"Secret without annotation uses the default", spectrumv1alpha1.PlanEnterprise,
			[]client.Object{secretWithPlan("creds", "")},
			withTLS(app("ssh", "tcp/22", "creds")), "", ""},
		{"missing Secret defaults, with a warning", spectrumv1alpha1.PlanPayAsYouGo, nil,
			withTLS(app("ssh", "tcp/22", "creds")), "spec.tls 10012", `credentials Secret "creds" not found`},
		{"unknown annotation defaults, with a warning", spectrumv1alpha1.PlanEnterprise,
			[]client.Object{secretWithPlan("creds", "free")},
			withTLS(app("ssh", "tcp/22", "creds")), "", `unknown spectrum.cloudflare-operator.io/account-plan annotation "free"`},
		{"sibling on the default credentials", spectrumv1alpha1.PlanPayAsYouGo,
			[]client.Object{app("other", "tcp/22", "")},
			app("ssh", "tcp/22", ""), "spec.protocol 11034", ""},
		{"sibling on other credentials is another account", spectrumv1alpha1.PlanPayAsYouGo,
			[]client.Object{app("other", "tcp/22", "creds"), secretWithPlan("creds", "pay-as-you-go")},
			app("ssh", "tcp/22", ""), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			warnings, err := validator(t, tc.def, tc.objs...).ValidateCreate(ctx, tc.app)
			if got := codesOf(t, err); got != tc.wantCodes {
				t.Errorf("codes %q, want %q (%v)", got, tc.wantCodes, err)
			}
			if tc.wantWarning == "" && len(warnings) > 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
			if tc.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.wantWarning)) {
				t.Errorf("warnings %q, want one containing %q", warnings, tc.wantWarning)
			}
		})
	}
}

func TestUpdateChecksSiblingsOnlyWhenTheyCouldClash(t *testing.T) {
	ctx := context.Background()
	old := app("ssh", "tcp/22", "")
	// Two apps already share tcp/22 (made before the plan was known).
	v := validator(t, spectrumv1alpha1.PlanPayAsYouGo, app("other", "tcp/22", ""), old, app("rdp", "tcp/3389", ""))

	edited := old.DeepCopy()
	edited.Spec.OriginDirect = []string{"tcp://192.0.2.9:22"}
	if _, err := v.ValidateUpdate(ctx, old, edited); err != nil {
		t.Errorf("editing an app that already shares its protocol was denied: %v", err)
	}

	moved := old.DeepCopy()
	moved.Spec.Protocol = "tcp/3389"
	moved.Spec.OriginDirect = []string{"tcp://192.0.2.1:3389"}
	_, err := v.ValidateUpdate(ctx, old, moved)
	if got := codesOf(t, err); got != "spec.protocol 11034" {
		t.Errorf("moving onto a taken protocol: codes %q (%v)", got, err)
	}
}

func TestSetupRejectsUnknownDefaultPlan(t *testing.T) {
	if err := SetupSpectrumAppWebhookWithManager(nil, Options{DefaultPlan: "free"}); err == nil {
		t.Error("want an error for an unknown default plan")
	}
}
