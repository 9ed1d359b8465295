package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// These tests run against a real kube-apiserver and etcd with the generated
// CRD installed: they prove the schema the apiserver enforces is the one the
// markers describe.

var (
	k8sClient client.Client
	restCfg   *rest.Config
)

func TestMain(m *testing.M) {
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	restCfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		os.Exit(1)
	}
	k8sClient, err = client.New(restCfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

func validApp(namespace string) *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Name: "ssh", Namespace: namespace},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:       "023e105f4ecef8ad9ca31a8372d0c353",
			Protocol:     "tcp/22",
			DNS:          v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
			OriginDirect: []string{"tcp://192.0.2.1:22"},
		},
	}
}

func TestSchemaRejectsInvalidFields(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name      string
		mutate    func(*v1alpha1.SpectrumApp)
		wantField string
		wantText  string
	}{
		{"tls outside its enum", func(a *v1alpha1.SpectrumApp) { a.Spec.TLS = "sometimes" }, "spec.tls", "Unsupported value"},
		{"dns type outside its enum", func(a *v1alpha1.SpectrumApp) { a.Spec.DNS.Type = "AAAA" }, "spec.dns.type", "Unsupported value"},
		{"deletion policy outside its enum", func(a *v1alpha1.SpectrumApp) { a.Spec.DeletionPolicy = "Keep" }, "spec.deletionPolicy", "Unsupported value"},
		{"protocol without scheme", func(a *v1alpha1.SpectrumApp) { a.Spec.Protocol = "22" }, "spec.protocol", "should match"},
		{"zone id not hex", func(a *v1alpha1.SpectrumApp) { a.Spec.ZoneID = "example.com" }, "spec.zoneID", "should match"},
		{"named protocol with a digit", func(a *v1alpha1.SpectrumApp) { a.Spec.Protocol = "ssh2" }, "spec.protocol", "should match"},
		{"zone name not a name", func(a *v1alpha1.SpectrumApp) { a.Spec.ZoneID, a.Spec.ZoneName = "", "example com" }, "spec.zoneName", "should match"},
		{"both zoneID and zoneName", func(a *v1alpha1.SpectrumApp) { a.Spec.ZoneName = "example.com" }, "spec", "set exactly one of zoneID and zoneName"},
		{"neither zoneID nor zoneName", func(a *v1alpha1.SpectrumApp) { a.Spec.ZoneID = "" }, "spec", "set exactly one of zoneID and zoneName"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := validApp(ns)
			app.Name = fmt.Sprintf("bad-%d", i)
			tc.mutate(app)
			err := k8sClient.Create(context.Background(), app)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want the apiserver to reject the object as Invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantField) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("rejection %q does not name %q with %q", err, tc.wantField, tc.wantText)
			}
		})
	}
}

func TestSchemaAppliesDefaults(t *testing.T) {
	ns := newNamespace(t)
	app := validApp(ns)
	app.Spec.CredentialsRef = &v1alpha1.SecretKeyReference{Name: "cloudflare"}
	if err := k8sClient.Create(context.Background(), app); err != nil {
		t.Fatalf("creating a valid app: %v", err)
	}
	if app.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		t.Errorf("deletionPolicy defaulted to %q, want Delete", app.Spec.DeletionPolicy)
	}
	if app.Spec.CredentialsRef.Key != v1alpha1.DefaultCredentialsKey {
		t.Errorf("credentialsRef.key defaulted to %q, want %q", app.Spec.CredentialsRef.Key, v1alpha1.DefaultCredentialsKey)
	}
}

func TestZoneIDIsImmutable(t *testing.T) {
	ns := newNamespace(t)
	app := validApp(ns)
	ctx := context.Background()
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatalf("creating: %v", err)
	}
	app.Spec.ZoneID = "ffffffffffffffffffffffffffffffff"
	err := k8sClient.Update(ctx, app)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "zoneID is immutable") {
		t.Fatalf("want zoneID change rejected as immutable, got %v", err)
	}
}

// A zone by name is as immutable as one by ID, and one cannot be swapped
// for the other.
func TestZoneNameIsImmutable(t *testing.T) {
	ns := newNamespace(t)
	app := validApp(ns)
	app.Spec.ZoneID, app.Spec.ZoneName = "", "example.com"
	ctx := context.Background()
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatalf("creating an app with zoneName: %v", err)
	}
	app.Spec.ZoneName = "example.org"
	if err := k8sClient.Update(ctx, app); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "zoneName is immutable") {
		t.Fatalf("want zoneName change rejected as immutable, got %v", err)
	}
	app.Spec.ZoneName, app.Spec.ZoneID = "", "023e105f4ecef8ad9ca31a8372d0c353"
	if err := k8sClient.Update(ctx, app); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("want zoneName swapped for zoneID rejected, got %v", err)
	}
}

func TestStatusIsASubresource(t *testing.T) {
	ns := newNamespace(t)
	app := validApp(ns)
	ctx := context.Background()
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatalf("creating: %v", err)
	}
	// A status sent with the main resource is dropped by the apiserver...
	app.Status.ApplicationID = "ignored"
	if err := k8sClient.Update(ctx, app); err != nil {
		t.Fatalf("updating: %v", err)
	}
	if app.Status.ApplicationID != "" {
		t.Fatalf("status written through the main resource: %q", app.Status.ApplicationID)
	}
	// ...and stored when sent to the status subresource.
	app.Status.ApplicationID = "ea95132c15732412d22c1476fa83f27a"
	if err := k8sClient.Status().Update(ctx, app); err != nil {
		t.Fatalf("updating status: %v", err)
	}
	if app.Status.ApplicationID != "ea95132c15732412d22c1476fa83f27a" {
		t.Fatalf("status subresource did not store applicationID: %q", app.Status.ApplicationID)
	}
}

func TestPrinterColumns(t *testing.T) {
	ns := newNamespace(t)
	app := validApp(ns)
	ctx := context.Background()
	if err := k8sClient.Create(ctx, app); err != nil {
		t.Fatalf("creating: %v", err)
	}
	app.Status.Conditions = []metav1.Condition{{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "ArgoNotEnabled",
		Message: "m", LastTransitionTime: metav1.Now(),
	}, {
		Type: v1alpha1.ConditionOriginsHealthy, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonOriginErrors,
		Message: "m", LastTransitionTime: metav1.Now(),
	}}
	app.Status.ZoneID, app.Status.ReconcilePolicy, app.Status.Differences = app.Spec.ZoneID, "observe", []string{"tls"}
	app.Status.Traffic = &v1alpha1.Traffic{Connections: 42, WindowSeconds: 300, ReadAt: metav1.Now()}
	if err := k8sClient.Status().Update(ctx, app); err != nil {
		t.Fatalf("updating status: %v", err)
	}

	// Ask for the server-side table, as kubectl get does.
	cfg := rest.CopyConfig(restCfg)
	cfg.GroupVersion = &v1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(ns).Resource("spectrumapps").Name(app.Name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatalf("getting table: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("decoding table: %v", err)
	}
	var names, wide []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
		if c.Priority > 0 {
			wide = append(wide, c.Name)
		}
	}
	if got, want := strings.Join(names, ","), "Name,Hostname,Zone,Zone ID,Protocol,Ready,Reason,Policy,Differences,Connections,Origins,Age"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	// Only kubectl get -o wide shows these.
	if got, want := strings.Join(wide, ","), "Zone ID,Differences,Connections,Origins"; got != want {
		t.Errorf("wide-only columns %s, want %s", got, want)
	}
	row := fmt.Sprint(table.Rows[0].Cells[:11])
	if want := `[ssh ssh.example.com <nil> 023e105f4ecef8ad9ca31a8372d0c353 tcp/22 False ArgoNotEnabled observe ["tls"] 42 OriginErrors]`; row != want {
		t.Fatalf("row %s, want %s", row, want)
	}
}
