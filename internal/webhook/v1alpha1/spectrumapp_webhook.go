// Package v1alpha1 holds the admission webhook for SpectrumApp v1alpha1. It
// is thin: the rules live in api/v1alpha1/rules; the webhook only finds
// what they need from the cluster (the account's plan and its other apps) and
// turns violations into an Invalid error that lists every one.
package v1alpha1

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

var log = logf.Log.WithName("spectrumapp-webhook")

// Options configure the SpectrumApp webhook.
type Options struct {
	// DefaultPlan is the account plan assumed when nothing says otherwise: for
	// apps without credentialsRef (they use the operator's default
	// credentials), and for credentials Secrets that are missing or carry no
	// account-plan annotation. Empty means enterprise (no plan limits).
	DefaultPlan spectrumv1alpha1.AccountPlan
	// DefaultCredentials is the Secret apps without credentialsRef use; its
	// grant annotations say which apps may (v1alpha1.CredentialsGrant).
	// Empty when the operator has none.
	DefaultCredentials spectrumv1alpha1.SecretKey
}

// SetupSpectrumAppWebhookWithManager registers the validating webhook for
// SpectrumApp with the manager's webhook server.
func SetupSpectrumAppWebhookWithManager(mgr ctrl.Manager, opts Options) error {
	if !knownPlan(opts.DefaultPlan) {
		return fmt.Errorf("unknown default account plan %q: use %q or %q",
			opts.DefaultPlan, spectrumv1alpha1.PlanEnterprise, spectrumv1alpha1.PlanPayAsYouGo)
	}
	claims, err := registerClaims(context.Background(), mgr.GetCache())
	if err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &spectrumv1alpha1.SpectrumApp{}).
		WithValidator(&SpectrumAppCustomValidator{Client: mgr.GetClient(), DefaultPlan: opts.DefaultPlan, DefaultCredentials: opts.DefaultCredentials, claims: claims}).
		Complete()
}

// claimKeys are the keys of the Cloudflare application an app stands for
// (claimRegistry): zone, hostname and protocol (a named protocol as its
// port). The zone as the spec names it and, for an app by zoneName, as
// the ID the controller resolved it to (status.zoneID), so an app by
// zoneID and one by zoneName of the same zone meet on one key.
func claimKeys(spec *spectrumv1alpha1.SpectrumAppSpec, resolvedZoneID string) []string {
	keys := []string{claimKey(spec)}
	if spec.ZoneID == "" && resolvedZoneID != "" {
		keys = append(keys, claimKeyIn(resolvedZoneID, spec))
	}
	return keys
}

// claimKey names the zone as the spec does.
func claimKey(spec *spectrumv1alpha1.SpectrumAppSpec) string {
	zone := spec.ZoneID
	if zone == "" {
		zone = "name:" + spectrum.NormalizeHostname(spec.ZoneName)
	}
	return claimKeyIn(zone, spec)
}

func claimKeyIn(zone string, spec *spectrumv1alpha1.SpectrumAppSpec) string {
	return zone + "/" + spectrum.NormalizeHostname(spec.DNS.Name) + "/" + rules.CanonicalProtocol(spec.Protocol)
}

// claimKeysOf are the keys a new or moved app would take: the spec's, and
// the zone's ID when an app by zoneName names a zone some SpectrumApp
// already resolved. (A zoneName no app has resolved yet is matched only by
// name; the controller's claim check, on the resolved ID, is the
// backstop.)
func (v *SpectrumAppCustomValidator) claimKeysOf(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) ([]string, error) {
	keys := claimKeys(&app.Spec, app.Status.ZoneID)
	if app.Spec.ZoneName == "" || app.Status.ZoneID != "" {
		return keys, nil
	}
	id, err := v.claims.zoneIDNamed(ctx, spectrum.NormalizeHostname(app.Spec.ZoneName))
	if err != nil || id == "" {
		return keys, err
	}
	return append(keys, claimKeyIn(id, &app.Spec)), nil
}

// +kubebuilder:webhook:path=/validate-spectrum-cloudflare-operator-io-v1alpha1-spectrumapp,mutating=false,failurePolicy=fail,sideEffects=None,groups=spectrum.cloudflare-operator.io,resources=spectrumapps,verbs=create;update,versions=v1alpha1,name=vspectrumapp-v1alpha1.kb.io,admissionReviewVersions=v1

// The plan lookup reads credentials Secrets' metadata, and the one-app-per-protocol
// rule lists the namespace's SpectrumApps, both through the manager's cache.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps,verbs=get;list;watch

// SpectrumAppCustomValidator validates SpectrumApps on create and update.
type SpectrumAppCustomValidator struct {
	// Client reads credentials Secrets and sibling SpectrumApps; the
	// manager's cached client.
	Client client.Reader
	// DefaultPlan: see Options.DefaultPlan.
	DefaultPlan spectrumv1alpha1.AccountPlan
	// DefaultCredentials: see Options.DefaultCredentials.
	DefaultCredentials spectrumv1alpha1.SecretKey

	// claims are the SpectrumApps by the Cloudflare application each
	// stands for.
	claims *claimRegistry
}

var _ admission.Validator[*spectrumv1alpha1.SpectrumApp] = &SpectrumAppCustomValidator{}

var specPath = field.NewPath("spec")

// ValidateCreate checks every rule, including what the account's plan allows.
func (v *SpectrumAppCustomValidator) ValidateCreate(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) (admission.Warnings, error) {
	vs := rules.ValidateSpec(&app.Spec, specPath)
	vs = append(vs, validatePolicy(app)...)
	claimed, err := v.claimedElsewhere(ctx, app)
	if err != nil {
		return nil, err
	}
	vs = append(vs, claimed...)
	granted, err := v.grantRefusal(ctx, app)
	if err != nil {
		return nil, err
	}
	vs = append(vs, granted...)
	planVs, warnings, err := v.validatePlan(ctx, app, true)
	if err != nil {
		return warnings, err
	}
	vs = append(vs, planVs...)
	return append(warnings, vs.Warnings()...), invalid(app, vs)
}

// ValidateUpdate checks a changed spec. An object being deleted is never
// checked, so that removing the finalizer cannot be blocked; nor is an update
// that leaves the spec alone (metadata, such as the finalizer the operator
// adds), so that a rule tightened in a later release does not freeze
// existing objects.
func (v *SpectrumAppCustomValidator) ValidateUpdate(ctx context.Context, oldApp, newApp *spectrumv1alpha1.SpectrumApp) (admission.Warnings, error) {
	if newApp.DeletionTimestamp != nil {
		return nil, nil
	}
	policy := validatePolicy(newApp)
	if equality.Semantic.DeepEqual(oldApp.Spec, newApp.Spec) {
		return nil, invalid(newApp, policy)
	}
	vs := append(rules.ValidateUpdate(&oldApp.Spec, &newApp.Spec, specPath), policy...)
	if claimKey(&oldApp.Spec) != claimKey(&newApp.Spec) {
		// Only a change of zone, hostname or protocol can make a clash;
		// apps that already clash may still be edited.
		claimed, err := v.claimedElsewhere(ctx, newApp)
		if err != nil {
			return nil, err
		}
		vs = append(vs, claimed...)
	}
	// A changed hostname, zone or credentials must be granted too.
	if claimKey(&oldApp.Spec) != claimKey(&newApp.Spec) || credentialsName(&oldApp.Spec) != credentialsName(&newApp.Spec) {
		granted, err := v.grantRefusal(ctx, newApp)
		if err != nil {
			return nil, err
		}
		vs = append(vs, granted...)
	}
	// Apps that already share a protocol (created before the account was
	// marked Pay-as-you-go) may still be edited; only a change that could
	// create the clash is checked against the siblings.
	checkSiblings := oldApp.Spec.Protocol != newApp.Spec.Protocol ||
		credentialsName(&oldApp.Spec) != credentialsName(&newApp.Spec)
	planVs, warnings, err := v.validatePlan(ctx, newApp, checkSiblings)
	if err != nil {
		return warnings, err
	}
	vs = append(vs, planVs...)
	return append(warnings, vs.Warnings()...), invalid(newApp, vs)
}

// grantRefusal refuses the operator's default credentials to an app their
// Secret's grant does not cover. A missing Secret is the controller's to
// report, as for credentialsRef.
func (v *SpectrumAppCustomValidator) grantRefusal(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) (rules.Violations, error) {
	if !app.UsesDefaultCredentials() || v.DefaultCredentials.Name == "" {
		return nil, nil
	}
	name := app.CredentialsSecret(v.DefaultCredentials).NamespacedName
	secret := &metav1.PartialObjectMetadata{}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := v.Client.Get(ctx, name, secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		log.Error(err, "Reading the default credentials Secret", "secret", name)
		return nil, apierrors.NewInternalError(fmt.Errorf("reading the default credentials Secret: %w", err))
	}
	if refusal := spectrumv1alpha1.GrantOf(secret).Refusal(name.String(), app); refusal != "" {
		return rules.Violations{{Code: rules.CodeNone, Source: rules.SourceKubernetes,
			Err: field.Forbidden(specPath.Child("credentialsRef"), refusal+"; set spec.credentialsRef to a credentials Secret of this namespace")}}, nil
	}
	return nil, nil
}

var policyPath = field.NewPath("metadata", "annotations").Key(spectrumv1alpha1.ReconcilePolicyAnnotation)

// validatePolicy: the reconcile-policy annotation, when set, is one the
// operator knows. It is the operator's own setting, not Cloudflare's.
func validatePolicy(app *spectrumv1alpha1.SpectrumApp) rules.Violations {
	policy, ok := app.Annotations[spectrumv1alpha1.ReconcilePolicyAnnotation]
	if !ok {
		return nil
	}
	if spectrumv1alpha1.IsReconcilePolicy(policy) {
		return nil
	}
	return rules.Violations{{Code: rules.CodeNone, Source: rules.SourceKubernetes,
		Err: field.NotSupported(policyPath, policy, spectrumv1alpha1.ReconcilePolicies)}}
}

// claimedElsewhere refuses a SpectrumApp whose zone, hostname and protocol
// another SpectrumApp already stands for, in any namespace: two would fight
// over one Cloudflare application, and deleting either would delete it for
// both. The other object is named only in the same namespace: tenants do
// not learn each other's names. (The controller's claim check remains the
// backstop for two creates that race past admission.)
func (v *SpectrumAppCustomValidator) claimedElsewhere(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) (rules.Violations, error) {
	keys, err := v.claimKeysOf(ctx, app)
	if err != nil {
		log.Error(err, "Listing SpectrumApps for the zone's ID")
		return nil, apierrors.NewInternalError(fmt.Errorf("listing SpectrumApps: %w", err))
	}
	var holders []types.NamespacedName
	for _, key := range keys {
		claimants, err := v.claims.holdersOf(ctx, key)
		if err != nil {
			log.Error(err, "Waiting for the SpectrumApps' claims")
			return nil, apierrors.NewInternalError(fmt.Errorf("reading the SpectrumApps' claims: %w", err))
		}
		holders = append(holders, claimants...)
	}
	for _, other := range holders {
		if other.Namespace == app.Namespace && other.Name == app.Name {
			continue
		}
		holder := "a SpectrumApp in another namespace"
		if other.Namespace == app.Namespace {
			holder = "SpectrumApp " + other.Name
		}
		return rules.Violations{{Code: rules.CodeNone, Source: rules.SourceKubernetes,
			Err: field.Forbidden(specPath.Child("dns", "name"), fmt.Sprintf(
				"%s with protocol %s in zone %s is already managed by %s: one Cloudflare application has one owner",
				app.Spec.DNS.Name, app.Spec.Protocol, app.Spec.Zone(), holder))}}, nil
	}
	return nil, nil
}

// ValidateDelete allows every delete: what happens at Cloudflare is the
// operator's job (deletionPolicy).
func (v *SpectrumAppCustomValidator) ValidateDelete(context.Context, *spectrumv1alpha1.SpectrumApp) (admission.Warnings, error) {
	return nil, nil
}

// validatePlan looks up the account's plan and, for Pay-as-you-go, the
// account's other apps, and applies the plan rules.
func (v *SpectrumAppCustomValidator) validatePlan(ctx context.Context, app *spectrumv1alpha1.SpectrumApp, checkSiblings bool) (rules.Violations, admission.Warnings, error) {
	plan, warnings, err := v.accountPlan(ctx, app)
	if err != nil || plan != spectrumv1alpha1.PlanPayAsYouGo {
		return nil, warnings, err
	}
	var siblings []spectrumv1alpha1.SpectrumAppSpec
	if checkSiblings {
		if siblings, err = v.siblings(ctx, app); err != nil {
			return nil, warnings, err
		}
	}
	return rules.ValidatePlan(plan, &app.Spec, siblings, specPath), warnings, nil
}

// accountPlan reads the account-plan annotation of the app's credentials
// Secret. A missing Secret is not an admission error (the operator reports
// it on the object); the plan then defaults, with a warning.
func (v *SpectrumAppCustomValidator) accountPlan(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) (spectrumv1alpha1.AccountPlan, admission.Warnings, error) {
	def := v.DefaultPlan
	if def == "" {
		def = spectrumv1alpha1.PlanEnterprise
	}
	name := credentialsName(&app.Spec)
	if name == "" {
		return def, nil, nil
	}

	// Only the annotations are needed: reading the Secret's metadata keeps
	// the manager from caching every Secret's data in the cluster.
	secret := &metav1.PartialObjectMetadata{}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := v.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return def, admission.Warnings{fmt.Sprintf(
			"credentials Secret %q not found: assuming account plan %q until it exists", name, def)}, nil
	case err != nil:
		log.Error(err, "Reading credentials Secret", "secret", types.NamespacedName{Namespace: app.Namespace, Name: name})
		return "", nil, apierrors.NewInternalError(fmt.Errorf("reading credentials Secret %q: %w", name, err))
	}

	plan := spectrumv1alpha1.AccountPlan(secret.Annotations[spectrumv1alpha1.AccountPlanAnnotation])
	switch {
	case plan == "":
		return def, nil, nil
	case !knownPlan(plan):
		return def, admission.Warnings{fmt.Sprintf(
			"credentials Secret %q: unknown %s annotation %q (use %q or %q): assuming %q",
			name, spectrumv1alpha1.AccountPlanAnnotation, plan,
			spectrumv1alpha1.PlanEnterprise, spectrumv1alpha1.PlanPayAsYouGo, def)}, nil
	}
	return plan, nil, nil
}

// siblings are the other SpectrumApps of the same Cloudflare account, as far
// as the cluster can tell: same namespace and same credentials Secret (or
// both on the operator's default credentials).
func (v *SpectrumAppCustomValidator) siblings(ctx context.Context, app *spectrumv1alpha1.SpectrumApp) ([]spectrumv1alpha1.SpectrumAppSpec, error) {
	var list spectrumv1alpha1.SpectrumAppList
	if err := v.Client.List(ctx, &list, client.InNamespace(app.Namespace)); err != nil {
		log.Error(err, "Listing SpectrumApps", "namespace", app.Namespace)
		return nil, apierrors.NewInternalError(fmt.Errorf("listing SpectrumApps: %w", err))
	}
	creds := credentialsName(&app.Spec)
	var specs []spectrumv1alpha1.SpectrumAppSpec
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == app.Name || credentialsName(&other.Spec) != creds {
			continue
		}
		specs = append(specs, other.Spec)
	}
	return specs, nil
}

// credentialsName is the app's credentials Secret name, "" for the
// operator's default credentials.
func credentialsName(spec *spectrumv1alpha1.SpectrumAppSpec) string {
	if spec.CredentialsRef == nil {
		return ""
	}
	return spec.CredentialsRef.Name
}

func knownPlan(p spectrumv1alpha1.AccountPlan) bool {
	return p == "" || p == spectrumv1alpha1.PlanEnterprise || p == spectrumv1alpha1.PlanPayAsYouGo
}

// invalid returns nil when no rule rejects, else one Invalid error listing
// every rejection, so kubectl shows every mistake at once. Warnings are
// returned as admission warnings, which kubectl prints.
func invalid(app *spectrumv1alpha1.SpectrumApp, vs rules.Violations) error {
	errs := vs.FieldErrors()
	if len(errs) == 0 {
		return nil
	}
	gk := spectrumv1alpha1.GroupVersion.WithKind("SpectrumApp").GroupKind()
	return apierrors.NewInvalid(gk, app.Name, errs)
}
