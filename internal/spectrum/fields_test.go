package spectrum_test

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/export"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// A Spectrum field is handled in about ten places, and a place that misses
// it fails nowhere else: a Pay-as-you-go account whose admission lets the
// field through gets 10012 from Cloudflare, an export that drops it makes
// the operator rewrite the app on adoption. fieldTable names every field of
// the spec and of the API's app, and the tests below hold each handler to
// it.

// fieldRow is one field. A Cloudflare field has both paths; a
// Kubernetes-only field (never sent to Cloudflare) has only spec; a
// response-only field (Cloudflare sets it) has only api. Paths are JSON
// names joined by dots, as kubectl and the API write them.
type fieldRow struct {
	// spec is the field's path in SpectrumAppSpec ("originDNS.ttl").
	spec string
	// api is the field's path in the API's application object
	// ("origin_dns.ttl").
	api string
	// base is a valid app that the field, set to sample, belongs in (an
	// origin_dns TTL needs origin_dns); directSpec when nil.
	base func() v1alpha1.SpectrumAppSpec
	// sample is a value, other than Cloudflare's default, that the
	// simulator accepts on base; JSON-encoded, it is the field's JSON.
	sample any
	// cloudflareDefault is the value Cloudflare gives the field when it is
	// not sent (spectrum.Default*), which export leaves out; nil when
	// Cloudflare has none.
	cloudflareDefault any
	// payAsYouGo says whether a Pay-as-you-go account may send the field,
	// and who says so.
	payAsYouGo planVerdict
}

type planVerdict struct {
	allowed bool
	source  string
}

const error10012 = "spectrum-api.md, error 10012: a Pay-as-you-go account may send only protocol, dns and origin_direct"

var (
	mayBeSentOnPayAsYouGo = planVerdict{allowed: true, source: error10012}
	refusedOnPayAsYouGo   = planVerdict{allowed: false, source: error10012}
	notSentToCloudflare   = planVerdict{allowed: true, source: "a Kubernetes-only field: the operator never sends it"}
)

var fieldTable = []fieldRow{
	// Cloudflare fields.
	{spec: "protocol", api: "protocol", sample: "tcp/2222", payAsYouGo: mayBeSentOnPayAsYouGo},
	{spec: "dns.type", api: "dns.type", base: staticEdgeIPsSpec, sample: "ADDRESS", payAsYouGo: mayBeSentOnPayAsYouGo},
	{spec: "dns.name", api: "dns.name", sample: "game.example.com", payAsYouGo: mayBeSentOnPayAsYouGo},
	{spec: "originDirect", api: "origin_direct", sample: []string{"tcp://192.0.2.7:22", "tcp://[2001:db8::7]:22"}, payAsYouGo: mayBeSentOnPayAsYouGo},
	{spec: "originDNS.name", api: "origin_dns.name", base: originDNSSpec, sample: "backend.example.com", payAsYouGo: refusedOnPayAsYouGo},
	{spec: "originDNS.ttl", api: "origin_dns.ttl", base: originDNSSpec, sample: 900, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "originDNS.type", api: "origin_dns.type", base: originDNSSpec, sample: "AAAA", payAsYouGo: refusedOnPayAsYouGo},
	{spec: "originPort", api: "origin_port", base: originDNSSpec, sample: 2222, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "ipFirewall", api: "ip_firewall", sample: true, cloudflareDefault: false, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "proxyProtocol", api: "proxy_protocol", sample: "v2", cloudflareDefault: spectrum.DefaultProxyProtocol, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "tls", api: "tls", sample: "full", cloudflareDefault: spectrum.DefaultTLS, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "trafficType", api: "traffic_type", sample: "https", cloudflareDefault: spectrum.DefaultTrafficType, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "edgeIPs.type", api: "edge_ips.type", base: staticEdgeIPsSpec, sample: "static", cloudflareDefault: spectrum.DefaultEdgeIPsType, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "edgeIPs.connectivity", api: "edge_ips.connectivity", base: dynamicEdgeIPsSpec, sample: "ipv6", cloudflareDefault: spectrum.DefaultConnectivity, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "edgeIPs.ips", api: "edge_ips.ips", base: staticEdgeIPsSpec, sample: []string{"203.0.113.20", "203.0.113.21"}, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "argoSmartRouting", api: "argo_smart_routing", sample: true, cloudflareDefault: false, payAsYouGo: refusedOnPayAsYouGo},
	{spec: "virtualNetworkID", api: "virtual_network_id", base: virtualNetworkSpec, sample: virtualNetworkID, payAsYouGo: refusedOnPayAsYouGo},

	// Kubernetes-only fields: where and how the operator manages the app.
	{spec: "zoneID", sample: enterpriseZone, payAsYouGo: notSentToCloudflare},
	{spec: "zoneName", sample: "example.com", payAsYouGo: notSentToCloudflare},
	{spec: "credentialsRef.name", sample: "cloudflare", payAsYouGo: notSentToCloudflare},
	{spec: "credentialsRef.key", sample: "token", payAsYouGo: notSentToCloudflare},
	{spec: "deletionPolicy", sample: string(v1alpha1.DeletionPolicyOrphan), payAsYouGo: notSentToCloudflare},

	// Response-only fields: Cloudflare sets them.
	{api: "id", sample: "ea95132c15732412d22c1476fa83f27a"},
	{api: "created_on", sample: "2026-01-02T03:04:05Z"},
	{api: "modified_on", sample: "2026-01-02T03:04:05Z"},
}

// whatToDo is what a failure of TestEveryFieldIsInTheTable asks for.
const whatToDo = `add a row to fieldTable (internal/spectrum/fields_test.go) with its spec and API paths, ` +
	`a sample value other than Cloudflare's default, Cloudflare's default (spectrum.Default*, if it has one) ` +
	`and whether a Pay-as-you-go account may send it (spectrum-api.md, error 10012); ` +
	`a Kubernetes-only field has no API path, a response-only field no spec path. ` +
	`The row's checks then make sure that each handler handles it: FromSpec, ToSpec and Differences ` +
	`(internal/spectrum/convert.go), export.Spec (internal/export/spec.go), the Pay-as-you-go list ` +
	`(validatePayAsYouGoFields, api/v1alpha1/rules/plan.go), the rules, which must accept the sample ` +
	`(rules.ValidateSpec), and the simulator's own App (internal/spectrum/spectrumtest/wire.go: ` +
	`the type, clone, withDefaults, render and decodeApp)`

func TestEveryFieldIsInTheTable(t *testing.T) {
	check := func(typeName string, typ reflect.Type, pathOf func(fieldRow) string) {
		t.Helper()
		found := jsonPaths(typ, "")
		if len(found) == 0 {
			t.Fatalf("found no fields in %s", typeName)
		}
		var listed []string
		for _, row := range fieldTable {
			if path := pathOf(row); path != "" {
				if slices.Contains(listed, path) {
					t.Errorf("fieldTable lists %s field %q twice", typeName, path)
				}
				listed = append(listed, path)
			}
		}
		for _, path := range found {
			if !slices.Contains(listed, path) {
				t.Errorf("%s has a field %q that fieldTable does not list: %s", typeName, path, whatToDo)
			}
		}
		for _, path := range listed {
			if !slices.Contains(found, path) {
				t.Errorf("fieldTable lists %q, which %s does not have: remove or rename the row", path, typeName)
			}
		}
	}
	for _, row := range fieldTable {
		name := cmp.Or(row.api, row.spec)
		if row.sample == nil {
			t.Errorf("fieldTable row %s has no sample: its checks would compare nothing with nothing", name)
		}
		if row.spec != "" && row.payAsYouGo.source == "" {
			t.Errorf("fieldTable row %s does not say whether a Pay-as-you-go account may send it, nor who says so", name)
		}
	}
	check("v1alpha1.SpectrumAppSpec", reflect.TypeFor[v1alpha1.SpectrumAppSpec](), func(row fieldRow) string { return row.spec })
	check("spectrum.App", reflect.TypeFor[spectrum.App](), func(row fieldRow) string { return row.api })
}

func TestEveryFieldIsHandled(t *testing.T) {
	for _, row := range fieldTable {
		switch {
		case row.spec != "" && row.api != "":
			t.Run(row.api, func(t *testing.T) { checkCloudflareField(t, row) })
		case row.spec != "":
			t.Run(row.spec, func(t *testing.T) { checkKubernetesOnlyField(t, row) })
		default:
			t.Run(row.api, func(t *testing.T) { checkResponseOnlyField(t, row) })
		}
	}
}

func checkCloudflareField(t *testing.T, row fieldRow) {
	base := directSpec
	if row.base != nil {
		base = row.base
	}
	with := withField(t, base(), row.spec, row.sample)
	without := withField(t, base(), row.spec, nil)
	if sameJSON(t, row.sample, row.cloudflareDefault) {
		t.Fatalf("the sample %v is Cloudflare's default: a handler that drops the field would pass", row.sample)
	}

	t.Run("FromSpec and ToSpec", func(t *testing.T) {
		app := spectrum.FromSpec(&with)
		if got, _ := lookup(t, app, row.api); !sameJSON(t, got, row.sample) {
			t.Errorf("FromSpec: %s = %v, want %v from spec.%s", row.api, got, row.sample, row.spec)
		}
		back := spectrum.ToSpec(app)
		if got, _ := lookup(t, back, row.spec); !sameJSON(t, got, row.sample) {
			t.Errorf("ToSpec(FromSpec(spec)): %s = %v, want %v", row.spec, got, row.sample)
		}
	})

	t.Run("Differences", func(t *testing.T) {
		desired, observed := spectrum.FromSpec(&with), spectrum.FromSpec(&without)
		if got := spectrum.Differences(desired, observed); !slices.Equal(got, []string{row.api}) {
			t.Errorf("Differences with %s = %v against one without it = %v, want [%s]", row.api, row.sample, got, row.api)
		}
	})

	t.Run("Pay-as-you-go", func(t *testing.T) {
		refused := refusedOnPayAsYouGoPlan(with, row.spec)
		switch {
		case refused && row.payAsYouGo.allowed:
			t.Errorf("the Pay-as-you-go plan check (rules.ValidatePlan) refuses spec.%s; it must allow it (%s)", row.spec, row.payAsYouGo.source)
		case !refused && !row.payAsYouGo.allowed:
			t.Errorf("the Pay-as-you-go plan check (rules.ValidatePlan) allows spec.%s; it must refuse it with %d (%s)",
				row.spec, rules.CodeUnknownField, row.payAsYouGo.source)
		}
	})

	t.Run("rules, simulator and export", func(t *testing.T) {
		// The sample is a valid app: the rules must not refuse what
		// Cloudflare (the simulator) accepts.
		if rejected := rules.ValidateSpec(&with, field.NewPath("spec")).Rejections(); len(rejected) > 0 {
			t.Errorf("rules.ValidateSpec rejects the sample app: %v", rejected.FieldErrors())
		}
		created, fetched := createInSimulator(t, with)
		desired := spectrum.FromSpec(&with)
		for _, answer := range []simulatorAnswer{{"created", created}, {"read back", fetched}} {
			if got, _ := lookup(t, answer.app, row.api); !sameJSON(t, got, row.sample) {
				t.Errorf("the simulator's %s app has %s = %v, want %v", answer.what, row.api, got, row.sample)
			}
			if diff := spectrum.Differences(desired, answer.app); len(diff) > 0 {
				t.Errorf("the simulator's %s app differs from the one sent in %v", answer.what, diff)
			}
		}
		exported := export.Spec(enterpriseZone, fetched, "cloudflare")
		if got, _ := lookup(t, exported, row.spec); !sameJSON(t, got, row.sample) {
			t.Errorf("export.Spec of the app Cloudflare returned: %s = %v, want %v", row.spec, got, row.sample)
		}
	})

	if row.cloudflareDefault != nil {
		t.Run("export leaves the default out", func(t *testing.T) {
			atDefault := withField(t, base(), row.spec, row.cloudflareDefault)
			exported := export.Spec(enterpriseZone, spectrum.FromSpec(&atDefault), "cloudflare")
			if got, found := lookup(t, exported, row.spec); found {
				t.Errorf("export.Spec keeps %s = %v, Cloudflare's default, which a Pay-as-you-go account may not send", row.spec, got)
			}
		})
	}
}

func checkKubernetesOnlyField(t *testing.T, row fieldRow) {
	with := withField(t, directSpec(), row.spec, row.sample)
	if got, found := lookup(t, with, row.spec); !found || !sameJSON(t, got, row.sample) {
		t.Fatalf("could not set spec.%s to %v", row.spec, row.sample)
	}
	without := directSpec()
	if app := spectrum.FromSpec(&with); !reflect.DeepEqual(app, spectrum.FromSpec(&without)) {
		t.Errorf("FromSpec sends Kubernetes-only spec.%s to Cloudflare: %+v", row.spec, app)
	}
	if refused := refusedOnPayAsYouGoPlan(with, row.spec); refused {
		t.Errorf("the Pay-as-you-go plan check refuses spec.%s (%s)", row.spec, row.payAsYouGo.source)
	}
}

func checkResponseOnlyField(t *testing.T, row fieldRow) {
	spec := directSpec()
	desired := spectrum.FromSpec(&spec)
	if got, found := lookup(t, desired, row.api); found {
		t.Errorf("FromSpec sets response-only %s = %v", row.api, got)
	}
	observed := withAppField(t, desired, row.api, row.sample)
	if got, _ := lookup(t, observed, row.api); !sameJSON(t, got, row.sample) {
		t.Fatalf("could not set %s to %v", row.api, row.sample)
	}
	if diff := spectrum.Differences(desired, observed); len(diff) > 0 {
		t.Errorf("Differences counts response-only %s: %v", row.api, diff)
	}
	created, fetched := createInSimulator(t, spec)
	for _, answer := range []simulatorAnswer{{"created", created}, {"read back", fetched}} {
		if got, found := lookup(t, answer.app, row.api); !found || got == "" {
			t.Errorf("the simulator's %s app has no %s", answer.what, row.api)
		}
	}
}

// The valid apps the samples are set on.

func directSpec() v1alpha1.SpectrumAppSpec {
	return v1alpha1.SpectrumAppSpec{
		Protocol:     "tcp/22",
		DNS:          v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22"},
	}
}

func originDNSSpec() v1alpha1.SpectrumAppSpec {
	spec := directSpec()
	spec.OriginDirect = nil
	spec.OriginDNS = &v1alpha1.OriginDNS{Name: "origin.example.com"}
	port := intstr.FromInt32(22)
	spec.OriginPort = &port
	return spec
}

func staticEdgeIPsSpec() v1alpha1.SpectrumAppSpec {
	spec := directSpec()
	spec.DNS.Type = "ADDRESS"
	spec.EdgeIPs = &v1alpha1.EdgeIPs{Type: "static", IPs: []string{staticEdgeIP}}
	return spec
}

func dynamicEdgeIPsSpec() v1alpha1.SpectrumAppSpec {
	spec := directSpec()
	spec.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic"}
	return spec
}

func virtualNetworkSpec() v1alpha1.SpectrumAppSpec {
	spec := directSpec()
	spec.OriginDirect = []string{"tcp://10.0.0.5:22"}
	return spec
}

// simulatorAnswer is the app one of the simulator's answers holds.
type simulatorAnswer struct {
	what string
	app  spectrum.App
}

// createInSimulator creates the app spec asks for, in a world of its own
// where the enterprise account has every entitlement, through the
// operator's client, and returns the app as the create answered it and as
// a read returns it.
func createInSimulator(t *testing.T, spec v1alpha1.SpectrumAppSpec) (created, fetched spectrum.App) {
	t.Helper()
	sim := startSimulator(t, testConfig())
	if err := sim.SetEntitlement(enterpriseAccount, spectrumtest.EntitlementArgo, true); err != nil {
		t.Fatal(err)
	}
	client := newClient(sim, enterpriseToken)
	ctx := testContext(t)
	created, err := client.CreateApp(ctx, enterpriseZone, spectrum.FromSpec(&spec))
	if err != nil {
		t.Fatalf("the simulator refused the app: %v", err)
	}
	fetched, err = client.GetApp(ctx, enterpriseZone, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	return created, fetched
}

// refusedOnPayAsYouGoPlan reports whether the plan check refuses the field
// at path (spec-relative) with 10012, itself or through its parent: a
// Pay-as-you-go account may not send origin_dns, so not origin_dns.ttl
// either.
func refusedOnPayAsYouGoPlan(spec v1alpha1.SpectrumAppSpec, path string) bool {
	for _, v := range rules.ValidatePlan(v1alpha1.PlanPayAsYouGo, &spec, nil, field.NewPath("spec")) {
		refused := strings.TrimPrefix(v.Err.Field, "spec.")
		if v.Code == rules.CodeUnknownField && (refused == path || strings.HasPrefix(path, refused+".")) {
			return true
		}
	}
	return false
}

// jsonPaths lists the JSON paths of typ's fields, descending into the
// structs of this module whose fields are JSON fields of their own (not
// one encoded by a method, like spectrum.OriginPort).
func jsonPaths(typ reflect.Type, prefix string) []string {
	var paths []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			paths = append(paths, jsonPaths(f.Type, prefix)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		inner := f.Type
		if inner.Kind() == reflect.Pointer {
			inner = inner.Elem()
		}
		if hasOwnFields(inner) {
			paths = append(paths, jsonPaths(inner, prefix+name+".")...)
		} else {
			paths = append(paths, prefix+name)
		}
	}
	return paths
}

func hasOwnFields(typ reflect.Type) bool {
	marshaler := reflect.TypeFor[json.Marshaler]()
	return typ.Kind() == reflect.Struct &&
		strings.HasPrefix(typ.PkgPath(), "github.com/cloudflare-operator/spectrum-operator/") &&
		!typ.Implements(marshaler) && !reflect.PointerTo(typ).Implements(marshaler)
}

// withField returns spec with the field at path set to value, or removed
// when value is nil, going through JSON so that a path names the field as
// the table does.
func withField(t *testing.T, spec v1alpha1.SpectrumAppSpec, path string, value any) v1alpha1.SpectrumAppSpec {
	var out v1alpha1.SpectrumAppSpec
	setJSON(t, spec, path, value, &out)
	return out
}

func withAppField(t *testing.T, app spectrum.App, path string, value any) spectrum.App {
	var out spectrum.App
	setJSON(t, app, path, value, &out)
	return out
}

func setJSON(t *testing.T, v any, path string, value any, out any) {
	object := jsonObject(t, v)
	parent := object
	keys := strings.Split(path, ".")
	for _, key := range keys[:len(keys)-1] {
		child, ok := parent[key].(map[string]any)
		if !ok {
			child = map[string]any{}
			parent[key] = child
		}
		parent = child
	}
	if value == nil {
		delete(parent, keys[len(keys)-1])
	} else {
		parent[keys[len(keys)-1]] = value
	}
	data, err := json.Marshal(object)
	if err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		t.Fatalf("setting %s to %v: %v", path, value, err)
	}
}

// lookup returns the JSON value at path in v, and whether it is there.
func lookup(t *testing.T, v any, path string) (any, bool) {
	var value any = jsonObject(t, v)
	for key := range strings.SplitSeq(path, ".") {
		object, ok := value.(map[string]any)
		if !ok {
			return nil, false
		}
		if value, ok = object[key]; !ok {
			return nil, false
		}
	}
	return value, true
}

func jsonObject(t *testing.T, v any) map[string]any {
	var object map[string]any
	data, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(data, &object)
	}
	if err != nil {
		t.Fatalf("encoding %T: %v", v, err)
	}
	return object
}

// sameJSON reports whether a and b encode to the same JSON value (a number
// is the same whatever Go type holds it).
func sameJSON(t *testing.T, a, b any) bool {
	normal := func(v any) any {
		var out any
		data, err := json.Marshal(v)
		if err == nil {
			err = json.Unmarshal(data, &out)
		}
		if err != nil {
			t.Fatalf("encoding %v: %v", v, err)
		}
		return out
	}
	return reflect.DeepEqual(normal(a), normal(b))
}
