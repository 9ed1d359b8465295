package appcache

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// metav1.Object: the getters read the Record, the setters change it
// through its typed app (modify).

func (r *Record) GetNamespace() string { return r.shape.namespace }
func (r *Record) SetNamespace(namespace string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Namespace = namespace })
}
func (r *Record) GetName() string { return r.name }
func (r *Record) SetName(name string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Name = name })
}
func (r *Record) GetGenerateName() string { return r.rareOrNone().generateName }
func (r *Record) SetGenerateName(name string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.GenerateName = name })
}

func (r *Record) GetUID() types.UID {
	if r.rare != nil && r.rare.uid != "" {
		return r.rare.uid
	}
	if r.uid == ([16]byte{}) {
		return ""
	}
	return types.UID(formatUUID(r.uid))
}
func (r *Record) SetUID(uid types.UID) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.UID = uid })
}

func (r *Record) GetResourceVersion() string {
	if r.rare != nil && r.rare.resourceVersion != "" {
		return r.rare.resourceVersion
	}
	if r.resourceVersion == 0 {
		return ""
	}
	return strconv.FormatUint(r.resourceVersion, 10)
}
func (r *Record) SetResourceVersion(version string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.ResourceVersion = version })
}
func (r *Record) GetGeneration() int64 { return r.generation }
func (r *Record) SetGeneration(generation int64) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Generation = generation })
}
func (r *Record) GetSelfLink() string { return r.rareOrNone().selfLink }
func (r *Record) SetSelfLink(link string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.SelfLink = link })
}
func (r *Record) GetCreationTimestamp() metav1.Time { return r.creationTimestamp }
func (r *Record) SetCreationTimestamp(at metav1.Time) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.CreationTimestamp = at })
}
func (r *Record) GetDeletionTimestamp() *metav1.Time { return r.rareOrNone().deletionTimestamp }
func (r *Record) SetDeletionTimestamp(at *metav1.Time) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.DeletionTimestamp = at })
}
func (r *Record) GetDeletionGracePeriodSeconds() *int64 {
	return r.rareOrNone().deletionGracePeriodSeconds
}
func (r *Record) SetDeletionGracePeriodSeconds(seconds *int64) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.DeletionGracePeriodSeconds = seconds })
}
func (r *Record) GetLabels() map[string]string { return r.labels }
func (r *Record) SetLabels(labels map[string]string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Labels = labels })
}
func (r *Record) GetAnnotations() map[string]string { return r.annotations }
func (r *Record) SetAnnotations(annotations map[string]string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Annotations = annotations })
}
func (r *Record) GetFinalizers() []string {
	if r.rare != nil && r.rare.finalizers != nil {
		return r.rare.finalizers
	}
	return r.shape.finalizers
}
func (r *Record) SetFinalizers(finalizers []string) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.Finalizers = finalizers })
}
func (r *Record) GetOwnerReferences() []metav1.OwnerReference { return r.rareOrNone().ownerReferences }
func (r *Record) SetOwnerReferences(references []metav1.OwnerReference) {
	r.modify(func(app *v1alpha1.SpectrumApp) { app.OwnerReferences = references })
}

// GetManagedFields implements metav1.Object: a Record keeps none, as the
// manager's cache keeps none of any object (nothing here reads them).
func (r *Record) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }

// SetManagedFields implements metav1.Object: see GetManagedFields.
func (r *Record) SetManagedFields([]metav1.ManagedFieldsEntry) {}

var noRare rare

func (r *Record) rareOrNone() *rare {
	if r.rare == nil {
		return &noRare
	}
	return r.rare
}

// parseUUID reads a UUID in the apiserver's form (lowercase, hyphenated);
// ok is false for any other form, and for the zero UUID, which a Record
// cannot tell from none.
func parseUUID(uid string) (id [16]byte, ok bool) {
	if len(uid) != 36 || uid[8] != '-' || uid[13] != '-' || uid[18] != '-' || uid[23] != '-' {
		return id, false
	}
	hexDigits := strings.ReplaceAll(uid, "-", "")
	if len(hexDigits) != 32 {
		return id, false
	}
	if !parseLowerHex(hexDigits, id[:]) || id == ([16]byte{}) {
		return [16]byte{}, false
	}
	return id, true
}

func formatUUID(id [16]byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, digits[b>>4], digits[b&0xf])
	}
	return string(out)
}

// parseID reads a Cloudflare ID (32 lowercase hex digits); ok is false for
// any other form and for all zeros.
func parseID(id string) (out [16]byte, ok bool) {
	if len(id) != 32 || !parseLowerHex(id, out[:]) || out == ([16]byte{}) {
		return [16]byte{}, false
	}
	return out, true
}

// parseLowerHex fills out from lowercase hex digits only: an uppercase
// digit would come back lowercase.
func parseLowerHex(digits string, out []byte) bool {
	if len(digits) != 2*len(out) {
		return false
	}
	value := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	for i := range out {
		hi, ok1 := value(digits[2*i])
		lo, ok2 := value(digits[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		out[i] = hi<<4 | lo
	}
	return true
}

// parseResourceVersion reads a resourceVersion in etcd's form, a decimal
// number without leading zeros; ok is false for any other form.
func parseResourceVersion(version string) (uint64, bool) {
	if version == "" || version[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(version); i++ {
		if version[i] < '0' || version[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(version, 10, 64)
	return n, err == nil
}
