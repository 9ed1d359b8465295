package v1alpha1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

const zoneID = "023e105f4ecef8ad9ca31a8372d0c353"

// manifest is a SpectrumApp as a user would write it; spec is YAML indented
// by two spaces, without zoneID.
func manifest(t *testing.T, ns, name, spec string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: spectrum.cloudflare-operator.io/v1alpha1
kind: SpectrumApp
metadata:
  name: %s
  namespace: %s
spec:
  zoneID: %s
%s`, name, ns, zoneID, spec)
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test manifest: %v\n%s", err, doc)
	}
	inNamespaceZone(u, ns)
	return u
}

// inNamespaceZone puts the namespace into the app's hostname
// (ssh.example.com becomes ssh.NS.example.com), so that tests in their own
// namespaces never claim one another's hostnames; tests of that claim set
// the names they need.
func inNamespaceZone(u *unstructured.Unstructured, ns string) {
	name, found, _ := unstructured.NestedString(u.Object, "spec", "dns", "name")
	if !found || !strings.HasSuffix(name, ".example.com") {
		return
	}
	_ = unstructured.SetNestedField(u.Object, strings.TrimSuffix(name, ".example.com")+"."+ns+".example.com", "spec", "dns", "name")
}

func create(t *testing.T, obj client.Object) error {
	t.Helper()
	return k8sClient.Create(context.Background(), obj)
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := create(t, obj); err != nil {
		t.Fatalf("create %s: %v", obj.GetName(), err)
	}
}

// cause is one expected field error: its path and Cloudflare code (0 for a
// rule without one).
type cause struct {
	field string
	code  int
}

// expectDenied checks that err is the apiserver refusing the object as
// Invalid with exactly the expected field errors, each naming its code.
func expectDenied(t *testing.T, err error, want ...cause) {
	t.Helper()
	if err == nil {
		t.Fatalf("request was allowed, want denied with %v", want)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid status error, got %T: %v", err, err)
	}
	causes := status.Status().Details.Causes
	if len(causes) != len(want) {
		t.Errorf("got %d causes, want %d: %v", len(causes), len(want), err)
	}
	used := make([]bool, len(causes))
	for _, w := range want {
		found := false
		for i, c := range causes {
			if used[i] || c.Field != w.field {
				continue
			}
			if w.code != 0 && !strings.HasSuffix(c.Message, fmt.Sprintf("(Cloudflare error %d)", w.code)) {
				continue
			}
			used[i], found = true, true
			break
		}
		if !found {
			t.Errorf("no cause %s (Cloudflare error %d) in: %v", w.field, w.code, err)
		}
	}
}

// waitCached waits until the manager's cache, which the webhook reads, has
// caught up with obj, so a test does not race the informer.
func waitCached(t *testing.T, obj client.Object) {
	t.Helper()
	copyObj := obj.DeepCopyObject().(client.Object)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cached.Get(context.Background(), client.ObjectKeyFromObject(obj), copyObj)
		if err == nil && copyObj.GetResourceVersion() == obj.GetResourceVersion() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache never saw %s at resourceVersion %s (last error %v)", obj.GetName(), obj.GetResourceVersion(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Each documented invalid-spec code, sent as a manifest through the
// apiserver, comes back denied at the right field with the right code.
func TestCreateRejectsInvalidSpecs(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name string
		spec string
		want []cause
	}{
		{"11000 no origin", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
`, []cause{{"spec.originDirect", 11000}}},
		{"11000 both origins", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22"]
  originDNS: {name: _ssh._tcp.example.com, type: SRV}
`, []cause{{"spec.originDNS", 11000}}},
		{"11001 originDNS without originPort", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDNS: {name: origin.example.com}
`, []cause{{"spec.originPort", 11001}}},
		{"11001 ttl below the minimum", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDNS: {name: origin.example.com, ttl: 60}
  originPort: 22
`, []cause{{"spec.originDNS.ttl", 11001}}},
		{"11001 bad originDNS name", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDNS: {name: "origin..example.com"}
  originPort: 22
`, []cause{{"spec.originDNS.name", 11001}}},
		{"11002 IPv6 without brackets", `
  protocol: tcp/443
  dns: {type: CNAME, name: tls.example.com}
  originDirect: ["tcp://2001:db8::1:443"]
`, []cause{{"spec.originDirect[0]", 11002}}},
		{"11002 hostname in originDirect", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22", "tcp://origin.example.com:22"]
`, []cause{{"spec.originDirect[1]", 11002}}},
		{"11002 port count mismatch", `
  protocol: tcp/1000-1010
  dns: {type: CNAME, name: game.example.com}
  originDirect: ["tcp://192.0.2.1:2000-2005"]
`, []cause{{"spec.originDirect[0]", 11002}}},
		{"11001 originPort count mismatch", `
  protocol: tcp/1000-1010
  dns: {type: CNAME, name: game.example.com}
  originDNS: {name: origin.example.com}
  originPort: "2000-2005"
`, []cause{{"spec.originPort", 11001}}},
		{"11004 ADDRESS without static edge IPs", `
  protocol: tcp/22
  dns: {type: ADDRESS, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22"]
`, []cause{{"spec.dns.type", 11004}}},
		{"11004 static edge IPs without ips", `
  protocol: tcp/22
  dns: {type: ADDRESS, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22"]
  edgeIPs: {type: static}
`, []cause{{"spec.edgeIPs.ips", 11004}}},
		{"11041 virtual network with originDNS", `
  protocol: tcp/5432
  dns: {type: CNAME, name: db.example.com}
  originDNS: {name: db.internal.example.com}
  originPort: 5432
  virtualNetworkID: 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e
`, []cause{{"spec.originDNS", 11041}}},
		{"11042 virtual network with two addresses", `
  protocol: tcp/5432
  dns: {type: CNAME, name: db.example.com}
  originDirect: ["tcp://10.0.0.5:5432", "tcp://10.0.0.6:5432"]
  virtualNetworkID: 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e
`, []cause{{"spec.originDirect", 11042}}},
		{"11043 virtual network with a port range", `
  protocol: tcp/5432-5433
  dns: {type: CNAME, name: db.example.com}
  originDirect: ["tcp://10.0.0.5:5432-5433"]
  virtualNetworkID: 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e
`, []cause{{"spec.originDirect[0]", 11043}}},
		{"11045 virtual network id not a UUID", `
  protocol: tcp/5432
  dns: {type: CNAME, name: db.example.com}
  originDirect: ["tcp://10.0.0.5:5432"]
  virtualNetworkID: office
`, []cause{{"spec.virtualNetworkID", 11045}}},
		{"protocol port out of range", `
  protocol: tcp/70000
  dns: {type: CNAME, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22"]
`, []cause{{"spec.protocol", 0}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := create(t, manifest(t, ns, fmt.Sprintf("app-%d", i), tc.spec))
			expectDenied(t, err, tc.want...)
		})
	}
}

// kubectl users see the rule's own words, path first and code last.
func TestDeniedMessageIsReadable(t *testing.T) {
	ns := newNamespace(t)
	err := create(t, manifest(t, ns, "ipv6", `
  protocol: tcp/443
  dns: {type: CNAME, name: tls.example.com}
  originDirect: ["tcp://2001:db8::1:443"]
`))
	want := `spec.originDirect[0]: Invalid value: "tcp://2001:db8::1:443": IPv6 origin must be in brackets, e.g. tcp://[2001:db8::1]:443 (Cloudflare error 11002)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\ndoes not contain %s", err, want)
	}
	if !strings.Contains(err.Error(), `admission webhook "vspectrumapp-v1alpha1.kb.io" denied the request`) {
		t.Errorf("not denied by our webhook: %v", err)
	}
}

// One object with many mistakes reports all of them in one answer.
func TestCreateReportsEveryViolation(t *testing.T) {
	ns := newNamespace(t)
	err := create(t, manifest(t, ns, "everything-wrong", `
  protocol: tcp/1000-1010
  dns: {type: ADDRESS, name: game.example.com}
  originDirect:
  - tcp://2001:db8::1:1000
  - udp://192.0.2.1:2000-2005
  originPort: 22
  trafficType: http
  argoSmartRouting: true
  virtualNetworkID: not-a-uuid
`))
	// udp behind tcp, originPort beside originDirect, Argo with http and
	// the edge range with a virtual network are warnings, not causes.
	expectDenied(t, err,
		cause{"spec.originDirect[0]", 11002},
		cause{"spec.originDirect[1]", 11002}, // 6 ports behind 11
		cause{"spec.dns.type", 11004},
		cause{"spec.virtualNetworkID", 11045},
		cause{"spec.originDirect", 11042},
		cause{"spec.originDirect[1]", 11043},
	)
}

const sshSpec = `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh.example.com}
  originDirect: ["tcp://192.0.2.1:22"]
`

func getApp(t *testing.T, ns, name string) *spectrumv1alpha1.SpectrumApp {
	t.Helper()
	app := &spectrumv1alpha1.SpectrumApp{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, app); err != nil {
		t.Fatal(err)
	}
	return app
}

func TestUpdate(t *testing.T) {
	ns := newNamespace(t)
	mustCreate(t, manifest(t, ns, "ssh", sshSpec))

	t.Run("valid change is allowed", func(t *testing.T) {
		app := getApp(t, ns, "ssh")
		app.Spec.OriginDirect = []string{"tcp://192.0.2.2:22"}
		if err := k8sClient.Update(context.Background(), app); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("11004 dns.type cannot change", func(t *testing.T) {
		app := getApp(t, ns, "ssh")
		app.Spec.DNS.Type = "ADDRESS"
		app.Spec.EdgeIPs = &spectrumv1alpha1.EdgeIPs{Type: "static", IPs: []string{"198.51.100.1"}}
		err := k8sClient.Update(context.Background(), app)
		expectDenied(t, err, cause{"spec.dns.type", 11004})
		if err != nil && !strings.Contains(err.Error(), "create a new SpectrumApp") {
			t.Errorf("message does not say what to do: %v", err)
		}
	})

	// The CRD's CEL rule answers before the webhook is asked; both say the
	// same thing.
	t.Run("zoneID is immutable", func(t *testing.T) {
		app := getApp(t, ns, "ssh")
		app.Spec.ZoneID = "fedcba9876543210fedcba9876543210"
		err := k8sClient.Update(context.Background(), app)
		expectDenied(t, err, cause{"spec.zoneID", 0})
		if err != nil && !strings.Contains(err.Error(), "create a new SpectrumApp") {
			t.Errorf("message does not say what to do: %v", err)
		}
	})

	t.Run("invalid change is denied", func(t *testing.T) {
		app := getApp(t, ns, "ssh")
		app.Spec.OriginDirect = []string{"tcp://2001:db8::1:22"}
		expectDenied(t, k8sClient.Update(context.Background(), app), cause{"spec.originDirect[0]", 11002})
	})
}

// payAsYouGo makes a credentials Secret marked Pay-as-you-go and waits until
// the webhook can see it.
func payAsYouGo(t *testing.T, ns, name string) {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{spectrumv1alpha1.CredentialsLabel: "true"},
			Namespace:   ns,
			Name:        name,
			Annotations: map[string]string{spectrumv1alpha1.AccountPlanAnnotation: string(spectrumv1alpha1.PlanPayAsYouGo)},
		},
		StringData: map[string]string{spectrumv1alpha1.DefaultCredentialsKey: "not-a-real-token"},
	}
	mustCreate(t, secret)
	waitCached(t, secret)
}

func TestPayAsYouGo(t *testing.T) {
	ns := newNamespace(t)
	payAsYouGo(t, ns, "payg")
	const payg = "\n  credentialsRef: {name: payg}"

	t.Run("10012 fields beyond protocol, dns and originDirect", func(t *testing.T) {
		err := create(t, manifest(t, ns, "extras", sshSpec+payg+`
  tls: "off"
  edgeIPs: {type: dynamic}
`))
		expectDenied(t, err, cause{"spec.tls", 10012}, cause{"spec.edgeIPs", 10012})
	})

	first := manifest(t, ns, "ssh-1", sshSpec+payg)
	mustCreate(t, first)
	waitCached(t, first)

	t.Run("11034 one app per protocol", func(t *testing.T) {
		err := create(t, manifest(t, ns, "ssh-2", strings.Replace(sshSpec, "ssh.example.com", "ssh2.example.com", 1)+payg))
		expectDenied(t, err, cause{"spec.protocol", 11034})
	})

	t.Run("another protocol is fine", func(t *testing.T) {
		mustCreate(t, manifest(t, ns, "rdp", `
  protocol: tcp/3389
  dns: {type: CNAME, name: rdp.example.com}
  originDirect: ["tcp://192.0.2.1:3389"]`+payg))
	})

	t.Run("other credentials are another account", func(t *testing.T) {
		// No annotation and no Secret at all: the default plan
		// (enterprise here) applies, with a warning.
		mustCreate(t, manifest(t, ns, "ssh-other-account", strings.Replace(sshSpec, "ssh.example.com", "ssh3.example.com", 1)+"\n  credentialsRef: {name: missing}"))
	})

	t.Run("metadata changes and deletion are never blocked", func(t *testing.T) {
		// Created before the account was marked Pay-as-you-go: now it
		// breaks 10012, but a finalizer can still come and go.
		legacy := manifest(t, ns, "legacy", strings.Replace(sshSpec, "ssh.example.com", "ssh4.example.com", 1)+"\n  credentialsRef: {name: later-payg}\n  tls: \"off\"")
		legacy.SetFinalizers([]string{spectrumv1alpha1.Finalizer})
		mustCreate(t, legacy)
		payAsYouGo(t, ns, "later-payg")

		app := getApp(t, ns, "legacy")
		app.Labels = map[string]string{"touched": "yes"}
		if err := k8sClient.Update(context.Background(), app); err != nil {
			t.Fatalf("metadata-only update denied: %v", err)
		}
		app = getApp(t, ns, "legacy")
		app.Spec.TLS = "full"
		expectDenied(t, k8sClient.Update(context.Background(), app), cause{"spec.tls", 10012})

		if err := k8sClient.Delete(context.Background(), app); err != nil {
			t.Fatal(err)
		}
		app = getApp(t, ns, "legacy")
		app.Finalizers = nil
		app.Spec.TLS = "full" // even with a spec change, a deleting object is not validated
		if err := k8sClient.Update(context.Background(), app); err != nil {
			t.Fatalf("finalizer removal on a deleting object denied: %v", err)
		}
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(app), app)
		if !apierrors.IsNotFound(err) {
			t.Errorf("object still there after its finalizer was removed: %v", err)
		}
	})
}

// Every sample in config/samples is accepted by the real apiserver.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "config", "samples", "spectrum_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found (err %v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(data, &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			inNamespaceZone(u, ns)
			if err := create(t, u); err != nil {
				t.Fatalf("sample denied: %v", err)
			}
		})
	}
}

// warningRecorder collects the admission warnings the apiserver sends back.
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// What Cloudflare accepts is admitted, however unusual: where a rule is
// stricter than its source, admission warns and lets the object through.
// Each case is a configuration the live API accepted (Cloudflare's Terraform
// provider acceptance tests) or one no source says it refuses.
func TestAdmitsWhatCloudflareAccepts(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name string
		spec string
		// warning is a phrase one of the warnings must hold; "" for none.
		warning string
	}{
		{"named protocol ssh", `
  protocol: ssh
  dns: {type: CNAME, name: ssh.example.com}
  originDirect: ["tcp://128.66.0.1:22"]
`, ""},
		{"named protocol rdp", `
  protocol: rdp
  dns: {type: CNAME, name: rdp.example.com}
  originDirect: ["tcp://128.66.0.1:3389"]
`, ""},
		{"named protocol minecraft", `
  protocol: minecraft
  dns: {type: CNAME, name: mc.example.com}
  originDirect: ["tcp://128.66.0.1:25565"]
`, ""},
		{"originPort beside originDirect", `
  protocol: tcp/22
  dns: {type: CNAME, name: ssh2.example.com}
  originDirect: ["tcp://128.66.0.2:23"]
  originPort: 22
`, "originPort"},
		{"virtual network with an edge port range", `
  protocol: tcp/5432-5433
  dns: {type: CNAME, name: db.example.com}
  originDirect: ["tcp://10.0.0.5:5432"]
  virtualNetworkID: 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e
`, "spec.protocol"},
		{"origin scheme other than the protocol's", `
  protocol: tcp/53
  dns: {type: CNAME, name: dns.example.com}
  originDirect: ["udp://192.0.2.1:53"]
`, "scheme udp"},
		{"UDP with simple proxy protocol", `
  protocol: udp/22
  dns: {type: CNAME, name: udp.example.com}
  originDirect: ["udp://128.66.0.6:22"]
  proxyProtocol: simple
`, ""},
		{"more than 64 origins", `
  protocol: tcp/22
  dns: {type: CNAME, name: many.example.com}
  originDirect: [` + manyOrigins(70) + `]
`, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recorder := &warningRecorder{}
			cfg := rest.CopyConfig(restConfig)
			cfg.WarningHandlerWithContext = recorder
			c, err := client.New(cfg, client.Options{Scheme: k8sClient.Scheme()})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Create(context.Background(), manifest(t, ns, fmt.Sprintf("ok-%d", i), tc.spec)); err != nil {
				t.Fatalf("Cloudflare accepts this, admission must too: %v", err)
			}
			recorder.mu.Lock()
			defer recorder.mu.Unlock()
			if tc.warning == "" && len(recorder.warnings) > 0 {
				t.Errorf("unexpected warnings %q", recorder.warnings)
			}
			if tc.warning != "" && !slices.ContainsFunc(recorder.warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Errorf("warnings %q lack one about %q", recorder.warnings, tc.warning)
			}
		})
	}
}

func manyOrigins(n int) string {
	origins := make([]string, n)
	for i := range origins {
		origins[i] = fmt.Sprintf(`"tcp://192.0.2.%d:22"`, i+1)
	}
	return strings.Join(origins, ", ")
}

// One Cloudflare application has one owner: a second SpectrumApp for the
// same zone, hostname and protocol is refused, in any namespace, and the
// message names the other object only inside the same namespace.
func TestOneOwnerPerHostnameAndProtocol(t *testing.T) {
	teamA, teamB := newNamespace(t), newNamespace(t)
	shared := func(ns, name, protocol, port string) *unstructured.Unstructured {
		u := manifest(t, ns, name, `
  protocol: `+protocol+`
  dns: {type: CNAME, name: placeholder}
  originDirect: ["tcp://192.0.2.1:`+port+`"]
`)
		_ = unstructured.SetNestedField(u.Object, "shared."+teamA+".example.com", "spec", "dns", "name")
		return u
	}
	first := shared(teamA, "first", "tcp/22", "22")
	mustCreate(t, first)
	waitCached(t, first)

	err := create(t, shared(teamA, "second", "tcp/22", "22"))
	expectDenied(t, err, cause{"spec.dns.name", 0})
	if !strings.Contains(err.Error(), "SpectrumApp first") {
		t.Errorf("same namespace: %v does not name the other SpectrumApp", err)
	}

	err = create(t, shared(teamB, "intruder", "tcp/22", "22"))
	expectDenied(t, err, cause{"spec.dns.name", 0})
	if strings.Contains(err.Error(), "SpectrumApp first") || !strings.Contains(err.Error(), "another namespace") {
		t.Errorf("another namespace: %v must say another namespace holds it, without its names", err)
	}

	// A named protocol is its port: ssh is tcp/22.
	expectDenied(t, create(t, shared(teamB, "named", "ssh", "22")), cause{"spec.dns.name", 0})
	// Another protocol on the same hostname is another application.
	mustCreate(t, shared(teamB, "other-port", "tcp/2222", "2222"))

	// Moving an app onto a held hostname is refused; other edits are not.
	moved := shared(teamB, "mover", "tcp/3333", "3333")
	mustCreate(t, moved)
	_ = unstructured.SetNestedField(moved.Object, "tcp/22", "spec", "protocol")
	_ = unstructured.SetNestedStringSlice(moved.Object, []string{"tcp://192.0.2.1:22"}, "spec", "originDirect")
	expectDenied(t, k8sClient.Update(context.Background(), moved), cause{"spec.dns.name", 0})
}

// The reconcile-policy annotation takes manage, observe or skip; anything
// else is refused, on create and when only the annotation changes.
func TestReconcilePolicyAnnotation(t *testing.T) {
	ns := newNamespace(t)
	withPolicy := func(name, policy string) *unstructured.Unstructured {
		u := manifest(t, ns, name, sshSpec)
		u.SetAnnotations(map[string]string{spectrumv1alpha1.ReconcilePolicyAnnotation: policy})
		_ = unstructured.SetNestedField(u.Object, name+"."+ns+".example.com", "spec", "dns", "name")
		return u
	}
	for _, policy := range []string{"manage", "observe", "skip"} {
		mustCreate(t, withPolicy("policy-"+policy, policy))
	}
	policyField := "metadata.annotations[" + spectrumv1alpha1.ReconcilePolicyAnnotation + "]"
	expectDenied(t, create(t, withPolicy("policy-typo", "obsrve")), cause{policyField, 0})

	app := withPolicy("policy-change", "observe")
	mustCreate(t, app)
	app.SetAnnotations(map[string]string{spectrumv1alpha1.ReconcilePolicyAnnotation: "pause"})
	expectDenied(t, k8sClient.Update(context.Background(), app), cause{policyField, 0})
}

// defaultCredentials is the suite's default credentials Secret; only
// TestDefaultCredentialsGrant creates it (while it is missing, admission
// leaves the default credentials to the controller).
var defaultCredentials = types.NamespacedName{Namespace: "webhook-defaults", Name: "cloudflare-default"}

// Apps without credentialsRef are admitted only where the default
// credentials Secret's annotations grant them, and refused at
// spec.credentialsRef with the grant that is missing.
func TestDefaultCredentialsGrant(t *testing.T) {
	ns := newNamespace(t)
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultCredentials.Namespace}}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: defaultCredentials.Namespace, Name: defaultCredentials.Name,
			Labels: map[string]string{spectrumv1alpha1.CredentialsLabel: "true"},
			Annotations: map[string]string{
				spectrumv1alpha1.GrantedNamespacesAnnotation: ns,
				spectrumv1alpha1.GrantedZonesAnnotation:      zoneID,
				spectrumv1alpha1.GrantedHostnamesAnnotation:  "ssh." + ns + ".example.com",
			}},
		StringData: map[string]string{spectrumv1alpha1.DefaultCredentialsKey: "not-a-real-token"},
	}
	mustCreate(t, secret)
	waitCached(t, secret)
	t.Cleanup(func() {
		_ = k8sClient.Delete(context.Background(), secret)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && cached.Get(context.Background(), client.ObjectKeyFromObject(secret), &corev1.Secret{}) == nil {
			time.Sleep(20 * time.Millisecond)
		}
	})

	if err := create(t, manifest(t, ns, "granted", sshSpec)); err != nil {
		t.Errorf("a granted app was refused: %v", err)
	}
	hostname := manifest(t, ns, "hostname", sshSpec)
	_ = unstructured.SetNestedField(hostname.Object, "web."+ns+".example.com", "spec", "dns", "name")
	err := create(t, hostname)
	expectDenied(t, err, cause{"spec.credentialsRef", 0})
	if err == nil || !strings.Contains(err.Error(), spectrumv1alpha1.GrantedHostnamesAnnotation) {
		t.Errorf("refusal %v does not name the hostname grant", err)
	}
	other := newNamespace(t)
	err = create(t, manifest(t, other, "tenant", sshSpec))
	expectDenied(t, err, cause{"spec.credentialsRef", 0})
	if err == nil || !strings.Contains(err.Error(), spectrumv1alpha1.GrantedNamespacesAnnotation) || strings.Contains(err.Error(), ns) {
		t.Errorf("refusal %v: want the namespace grant named and no other tenant's namespace", err)
	}
}

// An app by zoneID and one by zoneName of the same zone stand for the same
// application once the controller has resolved the name (status.zoneID):
// neither can be admitted beside the other.
func TestOneOwnerAcrossZoneIDAndZoneName(t *testing.T) {
	teamA, teamB := newNamespace(t), newNamespace(t)
	byName := func(ns, name, host string) *spectrumv1alpha1.SpectrumApp {
		return &spectrumv1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: spectrumv1alpha1.SpectrumAppSpec{
				ZoneName: "example.com", Protocol: "tcp/22",
				DNS: spectrumv1alpha1.DNS{Type: "CNAME", Name: host}, OriginDirect: []string{"tcp://192.0.2.1:22"},
			},
		}
	}
	byID := func(ns, name, host string) *spectrumv1alpha1.SpectrumApp {
		app := byName(ns, name, host)
		app.Spec.ZoneName, app.Spec.ZoneID = "", zoneID
		return app
	}
	resolved := func(app *spectrumv1alpha1.SpectrumApp) {
		t.Helper()
		mustCreate(t, app)
		app.Status.ZoneID = zoneID // as the controller records it
		if err := k8sClient.Status().Update(context.Background(), app); err != nil {
			t.Fatal(err)
		}
		waitCached(t, app)
	}

	// zoneName first, resolved; then zoneID, in another namespace.
	host := "first." + teamA + ".example.com"
	resolved(byName(teamA, "by-name", host))
	expectDenied(t, create(t, byID(teamB, "by-id", host)), cause{"spec.dns.name", 0})

	// zoneID first; then zoneName, known to be that zone through an app the
	// controller resolved.
	host = "second." + teamA + ".example.com"
	first := byID(teamA, "second-by-id", host)
	mustCreate(t, first)
	waitCached(t, first)
	expectDenied(t, create(t, byName(teamB, "second-by-name", host)), cause{"spec.dns.name", 0})
}
