package export

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

func TestBaseName(t *testing.T) {
	long := strings.Repeat("very-long-label.", 6) + "example.com"
	for _, tc := range []struct {
		hostname, protocol, want string
	}{
		{"ssh.example.com", "tcp/22", "ssh-example-com-tcp-22"},
		{"ssh.example.com", "udp/22", "ssh-example-com-udp-22"},
		{"SSH.Example.com.", "tcp/22", "ssh-example-com-tcp-22"},
		{"range.example.com", "tcp/1000-2000", "range-example-com-tcp-1000-2000"},
		{"bastion.example.com", "ssh", "bastion-example-com-ssh"},
		{"*.example.com", "tcp/443", "wildcard-example-com-tcp-443"},
		{"", "", "app-" + hash("", "")},
		{long, "tcp/22", "very-long-label-very-long-label-very-long-label-very-l-" + hash(long, "tcp/22")},
	} {
		got := BaseName(tc.hostname, tc.protocol)
		if got != tc.want {
			t.Errorf("BaseName(%q, %q) = %q, want %q", tc.hostname, tc.protocol, got, tc.want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) != 0 {
			t.Errorf("BaseName(%q, %q) = %q is not a DNS-1123 label: %v", tc.hostname, tc.protocol, got, errs)
		}
	}
}

func TestNamesAreUnique(t *testing.T) {
	prefix := strings.Repeat("a", 70)
	keys := []Key{
		{"ssh.example.com", "tcp/22"},
		{"ssh.example.com", "udp/22"},        // differs only by protocol
		{"a-b.example.com", "tcp/22"},        // these two sanitize alike
		{"a.b.example.com", "tcp/22"},        //
		{prefix + "1.example.com", "tcp/22"}, // these two differ only after the cut
		{prefix + "2.example.com", "tcp/22"}, //
	}
	names := Names(keys)
	seen := map[string]bool{}
	for i, name := range names {
		if seen[name] {
			t.Errorf("name %q given twice: %v", name, names)
		}
		seen[name] = true
		if errs := validation.IsDNS1123Label(name); len(errs) != 0 {
			t.Errorf("%q (for %v) is not a DNS-1123 label: %v", name, keys[i], errs)
		}
	}
	if names[0] != "ssh-example-com-tcp-22" || names[1] != "ssh-example-com-udp-22" {
		t.Errorf("names without a collision got a hash: %v", names[:2])
	}
	// Names depend on the keys, not their order.
	reversed := Names([]Key{keys[3], keys[2]})
	if reversed[0] != names[3] || reversed[1] != names[2] {
		t.Errorf("names changed with the order: %v then %v", names[2:4], reversed)
	}
}

// fakeClient answers listings from a map; zones absent from it fail.
type fakeClient struct {
	spectrum.Client
	listings map[string]spectrum.Listing
	err      error
}

func (f *fakeClient) ListApps(_ context.Context, zoneID string) (spectrum.Listing, error) {
	if listing, ok := f.listings[zoneID]; ok {
		return listing, nil
	}
	return spectrum.Listing{}, f.err
}

const otherZone = "1c3e5a7b9d0f2e4c6a8b0d2f4e6a8c0b"

func TestRunWritesEveryReadableAppAndWarnsOfTheRest(t *testing.T) {
	client := &fakeClient{listings: map[string]spectrum.Listing{
		testZone: {
			Apps: []*spectrum.App{ptr.To(decode(t, exportCases[1].json)), ptr.To(decode(t, exportCases[0].json))},
			Unreadable: []spectrum.UnreadableApp{{ID: "bad1", Hostname: "odd.example.com", Protocol: "tcp/9",
				Problem: "origin_port: not a port"}},
		},
		otherZone: {Apps: []*spectrum.App{ptr.To(decode(t, exportCases[11].json))}},
	}}
	var out, warnings bytes.Buffer
	opts := Options{Zones: []string{otherZone, testZone, otherZone}, Namespace: "imported", Secret: "cf",
		ReconcilePolicy: v1alpha1.ReconcilePolicyObserve}
	if err := Run(context.Background(), client, opts, &out, &warnings); err != nil {
		t.Fatal(err)
	}

	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3 (a zone named twice is exported once):\n%s", len(docs), out.String())
	}
	// In the order of the zones given, then by hostname.
	wantNames := []string{"game-example-com-udp-27015", "legacy-off-example-com-tcp-2222", "legacy-ssh-example-com-tcp-22"}
	for i, doc := range docs {
		var obj v1alpha1.SpectrumApp
		if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if obj.APIVersion != "spectrum.cloudflare-operator.io/v1alpha1" || obj.Kind != "SpectrumApp" ||
			obj.Name != wantNames[i] || obj.Namespace != "imported" || obj.Spec.CredentialsRef.Name != "cf" ||
			obj.Annotations[v1alpha1.ReconcilePolicyAnnotation] != v1alpha1.ReconcilePolicyObserve {
			t.Errorf("document %d: %+v %+v", i, obj.TypeMeta, obj.ObjectMeta)
		}
		if strings.Contains(doc, "status") || strings.Contains(doc, "creationTimestamp") {
			t.Errorf("document %d carries server-side fields:\n%s", i, doc)
		}
	}
	for _, want := range []string{"# warning: zone " + testZone, "bad1", "odd.example.com", "origin_port: not a port"} {
		if !strings.Contains(warnings.String(), want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings.String())
		}
	}
	if strings.Contains(out.String(), "odd.example.com") {
		t.Errorf("the unreadable app reached the manifests")
	}
}

// Without options, only the adoption request is written: the application
// exists, and the SpectrumApp must ask for it by ID.
func TestRunWithoutPolicyWritesOnlyTheAdoption(t *testing.T) {
	app := decode(t, exportCases[0].json)
	client := &fakeClient{listings: map[string]spectrum.Listing{testZone: {Apps: []*spectrum.App{&app}}}}
	var out, warnings bytes.Buffer
	if err := Run(context.Background(), client, Options{Zones: []string{testZone}, Secret: DefaultSecret}, &out, &warnings); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), v1alpha1.ReconcilePolicyAnnotation) || strings.Contains(out.String(), "namespace") || strings.Contains(out.String(), "deletionPolicy") {
		t.Errorf("unrequested metadata written:\n%s", out.String())
	}
	if app.ID == "" || !strings.Contains(out.String(), v1alpha1.AdoptApplicationIDAnnotation+": "+app.ID) {
		t.Errorf("the adoption of application %q is not requested:\n%s", app.ID, out.String())
	}
	if !strings.Contains(out.String(), "name: cloudflare-credentials") {
		t.Errorf("the default Secret is not named:\n%s", out.String())
	}
}

func TestRunPrintsNothingWhenAZoneFails(t *testing.T) {
	refused := &spectrum.APIError{HTTPStatus: 403, Errors: []spectrum.ErrorDetail{{Code: 9109, Message: "Invalid access token"}},
		Method: "GET", Path: "/zones/" + otherZone + "/spectrum/apps"}
	client := &fakeClient{listings: map[string]spectrum.Listing{testZone: {Apps: []*spectrum.App{ptr.To(decode(t, exportCases[0].json))}}}, err: refused}
	var out, warnings bytes.Buffer
	err := Run(context.Background(), client, Options{Zones: []string{testZone, otherZone}, Secret: DefaultSecret}, &out, &warnings)
	var zoneErr *ZoneError
	if !errors.As(err, &zoneErr) || zoneErr.ZoneID != otherZone {
		t.Fatalf("error %v, want a ZoneError for %s", err, otherZone)
	}
	for _, want := range []string{"9109", "HTTP 403", "CLOUDFLARE_API_TOKEN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if out.Len() != 0 {
		t.Errorf("a partial export was printed:\n%s", out.String())
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{Zones: []string{testZone}, Secret: DefaultSecret}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]Options{
		"no zone":          {Secret: DefaultSecret},
		"not a zone ID":    {Zones: []string{"example.com"}, Secret: DefaultSecret},
		"a path in a zone": {Zones: []string{testZone + "/../x"}, Secret: DefaultSecret},
		"no secret":        {Zones: []string{testZone}},
		"unknown policy":   {Zones: []string{testZone}, Secret: DefaultSecret, ReconcilePolicy: "watch"},
		"unknown deletion": {Zones: []string{testZone}, Secret: DefaultSecret, DeletionPolicy: "Keep"},
	} {
		if err := opts.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
