package appwatch

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// controlPlane starts a kube-apiserver and etcd with the CRDs installed.
func controlPlane(t *testing.T) (*rest.Config, *http.Client, client.Client) {
	t.Helper()
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme, HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, httpClient, c
}

func newApp(namespace, name, team string, i int) *v1alpha1.SpectrumApp {
	port := intstr.FromInt(8000 + i)
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"team": team},
			Annotations: map[string]string{"note": fmt.Sprintf(`quotes " and braces } in %d`, i)}},
		Spec: v1alpha1.SpectrumAppSpec{ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", Protocol: fmt.Sprintf("tcp/%d", 8000+i),
			DNS:          v1alpha1.DNS{Type: "CNAME", Name: fmt.Sprintf("app-%d.example.com", i)},
			OriginDirect: []string{fmt.Sprintf("tcp://192.0.2.%d:%d", i+1, 8000+i)}, OriginPort: &port},
	}
}

// TestWatchMatchesClientGo watches SpectrumApps of a real apiserver twice,
// through client-go's decoding as controller-runtime's cache sets it up
// and through the Watcher, and holds the two to the same events: the
// initial events of a watch list and its bookmark, additions, status
// updates and deletions.
func TestWatchMatchesClientGo(t *testing.T) {
	cfg, httpClient, c := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Create(ctx, newApp("team-a", fmt.Sprintf("before-%d", i), "a", i)); err != nil {
			t.Fatal(err)
		}
	}

	w, err := New(cfg, httpClient, scheme, nil)
	if err != nil {
		t.Fatal(err)
	}
	standard, err := apiutil.RESTClientForGVK(v1alpha1.GroupVersion.WithKind("SpectrumApp"), false, false, cfg, serializer.NewCodecFactory(scheme), httpClient)
	if err != nil {
		t.Fatal(err)
	}
	list := metav1.ListOptions{SendInitialEvents: ptr.To(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}
	fast, err := w.Watch(ctx, list)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()
	list.Watch, list.AllowWatchBookmarks = true, true
	clientGo, err := standard.Get().Resource("spectrumapps").VersionedParams(&list, runtime.NewParameterCodec(scheme)).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer clientGo.Stop()

	changed := newApp("team-a", "after", "a", 7)
	if err := c.Create(ctx, changed); err != nil {
		t.Fatal(err)
	}
	changed.Status.ApplicationID = "ea95132c15732412d22c1476fa83f27a"
	changed.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced",
		Message: `in sync with "ssh" {tcp/22}`, LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, changed); err != nil {
		t.Fatal(err)
	}

	// 3 initial additions, the bookmark that ends them, then an addition,
	// an update and a deletion.
	const events = 7
	want, got := collect(t, clientGo, events), collect(t, fast, events)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the Watcher's events differ from client-go's:\n%#v\n%#v", got, want)
	}
	if want[3].Type != watch.Bookmark || want[3].Object.(*v1alpha1.SpectrumApp).Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("event 4 is %s, want the bookmark ending the initial events", want[3].Type)
	}
	if want[6].Type != watch.Deleted {
		t.Fatalf("the last event is %s, want the deletion", want[6].Type)
	}
	if apps, handedOn := w.Decoded(); apps != events || handedOn != 0 {
		t.Errorf("decoded %d SpectrumApps in one pass and handed %d on to client-go, want %d and 0", apps, handedOn, events)
	}
}

func collect(t *testing.T, events watch.Interface, n int) []watch.Event {
	t.Helper()
	var out []watch.Event
	timeout := time.After(time.Minute)
	for len(out) < n {
		select {
		case e, ok := <-events.ResultChan():
			if !ok {
				t.Fatalf("the watch ended after %d events: %#v", len(out), out)
			}
			out = append(out, e)
		case <-timeout:
			t.Fatalf("%d events after a minute, want %d: %#v", len(out), n, out)
		}
	}
	return out
}

// TestInformerWatchesThroughTheWatcher builds controller-runtime's cache
// as the manager does (a label selector, as the controller suite's has),
// with the Watcher's NewInformer, and checks that the SpectrumApps it
// holds came through the Watcher, and only the selected ones.
func TestInformerWatchesThroughTheWatcher(t *testing.T) {
	cfg, httpClient, c := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	selector := labels.SelectorFromSet(labels.Set{"team": "a"})
	w, err := New(cfg, httpClient, scheme, selector)
	if err != nil {
		t.Fatal(err)
	}
	// Two of team a before the cache starts (its first watch lists them,
	// with a bookmark), one of team b, and one of team a after.
	for i, team := range []string{"a", "b", "a"} {
		if err := c.Create(ctx, newApp("team-a", fmt.Sprintf("app-%d", i), team, i)); err != nil {
			t.Fatal(err)
		}
	}
	informers, err := cache.New(cfg, cache.Options{Scheme: scheme, HTTPClient: httpClient, NewInformer: w.NewInformer,
		ByObject: map[client.Object]cache.ByObject{&v1alpha1.SpectrumApp{}: {Label: selector}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if _, err := informers.GetInformer(ctx, &v1alpha1.SpectrumApp{}); err != nil {
		t.Fatal(err)
	}
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	if apps, _ := w.Decoded(); apps < 3 {
		t.Fatalf("%d SpectrumApps came through the Watcher as the cache started, want team a's 2 and the bookmark ending them", apps)
	}
	if err := c.Create(ctx, newApp("team-a", "app-3", "a", 3)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		var apps v1alpha1.SpectrumAppList
		if err := informers.List(ctx, &apps); err != nil {
			return err.Error()
		}
		if len(apps.Items) != 3 {
			return fmt.Sprintf("the cache holds %d apps, want team a's 3", len(apps.Items))
		}
		for _, app := range apps.Items {
			if app.Labels["team"] != "a" || app.Spec.Protocol == "" {
				return fmt.Sprintf("the cache holds %s of team %q with protocol %q", app.Name, app.Labels["team"], app.Spec.Protocol)
			}
		}
		return ""
	})
	if apps, _ := w.Decoded(); apps < 4 {
		t.Errorf("%d SpectrumApps came through the Watcher, want 4 at least", apps)
	}
}
