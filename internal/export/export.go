package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// DefaultSecret is the credentials Secret the exported apps name unless told
// otherwise: the one the README and the samples create.
const DefaultSecret = "cloudflare-credentials"

// Options say what to export and how to write it.
type Options struct {
	// Zones are the zone IDs to export, in order.
	Zones []string
	// Namespace, when set, is written into every object; otherwise kubectl
	// apply uses its current namespace.
	Namespace string
	// Secret is the credentials Secret every object names.
	Secret string
	// ReconcilePolicy, when set, is written as the
	// spectrum.cloudflare-operator.io/reconcile-policy annotation.
	ReconcilePolicy string
	// DeletionPolicy, when set, is written as spec.deletionPolicy.
	DeletionPolicy v1alpha1.DeletionPolicy
}

var zoneIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Validate reports the first option that cannot work.
func (o Options) Validate() error {
	if len(o.Zones) == 0 {
		return fmt.Errorf("no zone: name at least one with --zone ZONE_ID")
	}
	for _, zone := range o.Zones {
		if !zoneIDPattern.MatchString(zone) {
			return fmt.Errorf("zone %q is not a zone ID (32 lowercase hexadecimal characters, on the zone's Overview page in the dashboard)", zone)
		}
	}
	if o.Secret == "" {
		return fmt.Errorf("the credentials Secret name is empty")
	}
	if o.ReconcilePolicy != "" && !v1alpha1.IsReconcilePolicy(o.ReconcilePolicy) {
		return fmt.Errorf("reconcile policy %q: use one of %s", o.ReconcilePolicy, strings.Join(v1alpha1.ReconcilePolicies, ", "))
	}
	switch o.DeletionPolicy {
	case "", v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyOrphan:
	default:
		return fmt.Errorf("deletion policy %q: use %s or %s", o.DeletionPolicy, v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyOrphan)
	}
	return nil
}

// Manifest is a SpectrumApp as it is printed: only what a user writes (no
// status, no server-set metadata), so that kubectl apply takes it as is.
type Manifest struct {
	APIVersion string                   `json:"apiVersion"`
	Kind       string                   `json:"kind"`
	Metadata   Metadata                 `json:"metadata"`
	Spec       v1alpha1.SpectrumAppSpec `json:"spec"`
}

// Metadata is the part of ObjectMeta an exported object sets.
type Metadata struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ZoneApp is an application and the zone it was listed in.
type ZoneApp struct {
	ZoneID string
	App    spectrum.App
}

// Manifests returns one manifest per application, sorted by zone (in the
// order of opts.Zones), hostname and protocol, with unique names.
func Manifests(apps []ZoneApp, opts Options) []Manifest {
	sorted := slices.Clone(apps)
	zoneOrder := func(zone string) int { return slices.Index(opts.Zones, zone) }
	slices.SortStableFunc(sorted, func(a, b ZoneApp) int {
		if c := zoneOrder(a.ZoneID) - zoneOrder(b.ZoneID); c != 0 {
			return c
		}
		if c := strings.Compare(spectrum.NormalizeHostname(a.App.DNS.Name), spectrum.NormalizeHostname(b.App.DNS.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.App.Protocol, b.App.Protocol)
	})
	keys := make([]Key, len(sorted))
	for i, za := range sorted {
		keys[i] = Key{Hostname: za.App.DNS.Name, Protocol: za.App.Protocol}
	}
	names := Names(keys)

	manifests := make([]Manifest, len(sorted))
	for i, za := range sorted {
		m := Manifest{
			APIVersion: v1alpha1.GroupVersion.String(),
			Kind:       "SpectrumApp",
			// The applications exist: the SpectrumApps ask to adopt them.
			Metadata: Metadata{Name: names[i], Namespace: opts.Namespace,
				Annotations: map[string]string{v1alpha1.AdoptApplicationIDAnnotation: za.App.ID}},
			Spec: Spec(za.ZoneID, za.App, opts.Secret),
		}
		m.Spec.DeletionPolicy = opts.DeletionPolicy
		if opts.ReconcilePolicy != "" {
			m.Metadata.Annotations[v1alpha1.ReconcilePolicyAnnotation] = opts.ReconcilePolicy
		}
		manifests[i] = m
	}
	return manifests
}

// WriteYAML writes the manifests as YAML documents separated by "---".
func WriteYAML(w io.Writer, manifests []Manifest) error {
	var b bytes.Buffer
	for i, m := range manifests {
		doc, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("writing %s: %w", m.Metadata.Name, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(doc)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// ZoneError is a zone whose applications could not be listed.
type ZoneError struct {
	ZoneID string
	Err    error
}

func (e *ZoneError) Error() string {
	return fmt.Sprintf("listing the Spectrum applications of zone %s: %v%s", e.ZoneID, e.Err, hint(e.Err))
}

func (e *ZoneError) Unwrap() error { return e.Err }

// hint says what to do, for a person running the command (the
// classification's own resolution speaks of the operator's Secret).
func hint(err error) string {
	switch c := spectrum.Classify(err); {
	case c.Reason == "AuthenticationFailed":
		return " (check CLOUDFLARE_API_TOKEN: it must be a valid API token with Zone > Spectrum > Read or Edit on this zone)"
	case c.Reason == v1alpha1.ReasonNetworkError:
		return " (Cloudflare could not be reached: check the network, a proxy, or --api-url)"
	case c.Class == failure.Retryable:
		return " (a temporary failure: try again later)"
	}
	return ""
}

// Run lists every zone of opts, then writes the manifests of every readable
// application to out. Applications Cloudflare returned in a shape that could
// not be read are skipped and named on warnings, as YAML comments, so the
// rest can still be applied; so is a spec the operator's admission would
// refuse. Nothing is written to out unless every zone could be listed: a
// partial export piped to kubectl apply would look complete.
func Run(ctx context.Context, client spectrum.Client, opts Options, out, warnings io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	var apps []ZoneApp
	var notes []string
	for _, zone := range uniq(opts.Zones) {
		listing, err := client.ListApps(ctx, zone)
		if err != nil {
			return &ZoneError{ZoneID: zone, Err: err}
		}
		for _, app := range listing.Apps {
			apps = append(apps, ZoneApp{ZoneID: zone, App: *app})
		}
		for _, u := range listing.Unreadable {
			notes = append(notes, fmt.Sprintf("# warning: zone %s: skipped application %s (hostname %q, protocol %q): it could not be read: %s",
				zone, orUnknown(u.ID), u.Hostname, u.Protocol, u.Problem))
		}
	}
	manifests := Manifests(apps, opts)
	for _, m := range manifests {
		for _, v := range rules.ValidateSpec(&m.Spec, field.NewPath("spec")).Rejections() {
			notes = append(notes, fmt.Sprintf("# warning: %s (%s %s): admission will refuse it: %s",
				m.Metadata.Name, m.Spec.DNS.Name, m.Spec.Protocol, v.Err.Error()))
		}
	}
	for _, note := range notes {
		if _, err := fmt.Fprintln(warnings, note); err != nil {
			return err
		}
	}
	if len(manifests) == 0 {
		_, err := fmt.Fprintf(warnings, "# no Spectrum applications in zone(s) %s\n", strings.Join(uniq(opts.Zones), ", "))
		return err
	}
	return WriteYAML(out, manifests)
}

func uniq(zones []string) []string {
	var out []string
	for _, z := range zones {
		if !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "(id unknown)"
	}
	return s
}
