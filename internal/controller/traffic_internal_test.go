package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// OriginsHealthy is False from one origin error in ten connects, Unknown
// without traffic, True otherwise.
func TestOriginsHealthyFromTheWindowsEvents(t *testing.T) {
	for _, c := range []struct {
		connects, originErrors int64
		status                 metav1.ConditionStatus
		reason                 string
	}{
		{0, 0, metav1.ConditionUnknown, v1alpha1.ReasonNoTraffic},
		{100, 0, metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering},
		{100, 9, metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering},
		{100, 10, metav1.ConditionFalse, v1alpha1.ReasonOriginErrors},
		{40, 38, metav1.ConditionFalse, v1alpha1.ReasonOriginErrors},
		// Errors without a connect event counted (the window cut between
		// them): the origins failed.
		{0, 3, metav1.ConditionFalse, v1alpha1.ReasonOriginErrors},
	} {
		status, reason, message := originsHealthy(v1alpha1.Traffic{Connects: c.connects, OriginErrors: c.originErrors, WindowSeconds: 300})
		if status != c.status || reason != c.reason || message == "" {
			t.Errorf("%d connects, %d origin errors: %s %s %q, want %s %s", c.connects, c.originErrors, status, reason, message, c.status, c.reason)
		}
	}
}

// A reconcile's merge patch sends the whole conditions list: it carries the
// watch's latest OriginsHealthy, not the older one of the object it read,
// and the condition alone never makes it write.
func TestReconcilePatchCarriesTheLatestOriginsHealthy(t *testing.T) {
	w := &trafficWatch{apps: map[types.NamespacedName]*appTraffic{}}
	app := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Generation: 2}}
	stale := metav1.Condition{Type: v1alpha1.ConditionOriginsHealthy, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonOriginsAnswering}
	app.Status.Conditions = []metav1.Condition{stale}
	latest := metav1.Condition{Type: v1alpha1.ConditionOriginsHealthy, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonOriginErrors, Message: "38 of 40"}
	w.apps[types.NamespacedName{Namespace: "ns", Name: "app"}] = &appTraffic{latest: trafficState{condition: latest}}

	before := app.DeepCopy()
	w.carry(before, app)
	if !equality.Semantic.DeepEqual(before.Status, app.Status) {
		t.Errorf("carrying the condition alone made status differ: %v vs %v", before.Status.Conditions, app.Status.Conditions)
	}

	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced"})
	patch, err := client.MergeFrom(before).Data(app)
	if err != nil {
		t.Fatal(err)
	}
	if text := string(patch); !strings.Contains(text, v1alpha1.ReasonOriginErrors) || strings.Contains(text, v1alpha1.ReasonOriginsAnswering) {
		t.Errorf("the reconcile's patch %s does not carry the latest OriginsHealthy", text)
	}

	var off *trafficWatch
	other := app.DeepCopy()
	off.carry(other, other) // traffic off: nothing to carry, no panic
}

// pacedReader is a TrafficReader whose budget allows pace analytics
// requests per second.
type pacedReader struct{ pace float64 }

func (p pacedReader) ZoneTraffic(context.Context, string, []string, time.Duration) (spectrum.ZoneTraffic, error) {
	return spectrum.ZoneTraffic{}, nil
}

func (p pacedReader) TrafficPace() float64 { return p.pace }

// A zone is read every minimum interval while the token's share can read
// all its zones in it; beyond, the interval stretches with the zones and
// with a budget that runs low.
func TestTrafficIntervalStretchesWithZonesAndBudget(t *testing.T) {
	w := newTrafficWatch(&SpectrumAppReconciler{}, TrafficOptions{MinInterval: time.Minute})
	creds := v1alpha1.SecretKey{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "cloudflare"}, Key: "apiToken"}
	other := v1alpha1.SecretKey{NamespacedName: types.NamespacedName{Namespace: "other", Name: "cloudflare"}, Key: "apiToken"}
	zones := func(n int, c v1alpha1.SecretKey) {
		for i := range n {
			w.zones[trafficKey{zoneID: fmt.Sprintf("%s-zone-%d", c.Namespace, i), creds: c}] = &zoneSchedule{}
		}
	}
	// 10 % of 3.99 requests per second: 0.399, one request per zone.
	full := pacedReader{pace: 0.399}
	zones(10, creds)
	zones(500, other) // another token's zones do not count
	if got := w.interval(creds, full); got != time.Minute {
		t.Errorf("10 zones: %s, want the minimum, 1m", got)
	}
	zones(100, creds)
	near := func(got, want time.Duration) bool { return got > want-time.Second && got < want+time.Second }
	// 100 zones, a request each, at 0.399/s: 251 s.
	if got := w.interval(creds, full); !near(got, 251*time.Second) {
		t.Errorf("100 zones: %s, want about 251 s", got)
	}
	// Cloudflare's headers say the budget runs low: the pace is a quarter.
	if got := w.interval(creds, pacedReader{pace: 0.399 / 4}); !near(got, 1003*time.Second) {
		t.Errorf("100 zones at a quarter of the pace: %s, want about 1003 s", got)
	}
	// Paused: nothing to compute from; looked at again at the minimum.
	if got := w.interval(creds, pacedReader{}); got != time.Minute {
		t.Errorf("paused: %s, want 1m", got)
	}
}

// A read tells its apps what it found without waiting for the watch's
// write budget: a crossing is queued for the writer, each app once and in
// order, with its latest state kept for the write, and the zone's next read
// is not held up behind the writes (the first read of 1,000 apps is 1,000
// new conditions, 50 s of writes at 20 a second, during which no zone was
// read again). That the writer writes them is
// TestTrafficReadsGoOnWhileNewConditionsWaitForTheirWrites's.
func TestATrafficReadQueuesItsCrossingsForTheWriter(t *testing.T) {
	// One write in a thousand seconds, and that one spent: no write for now.
	w := newTrafficWatch(&SpectrumAppReconciler{}, TrafficOptions{StatusWritesPerSecond: 0.001})
	w.writes.Allow()
	apps := []*v1alpha1.SpectrumApp{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", Generation: 1}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b", Generation: 1}},
	}
	told := make(chan struct{})
	go func() {
		defer close(told)
		for _, app := range apps {
			w.tell(context.Background(), app, v1alpha1.Traffic{Connects: 10, WindowSeconds: 300})
		}
		// A later read: b no longer crosses back; a's numbers changed.
		w.tell(context.Background(), apps[0], v1alpha1.Traffic{Connects: 12, WindowSeconds: 300})
	}()
	select {
	case <-told:
	case <-time.After(5 * time.Second):
		t.Fatal("telling two apps their first traffic waited for the write budget")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := fmt.Sprint(w.crossings); got != "[ns/a ns/b]" {
		t.Errorf("crossings queued %s, want [ns/a ns/b], each once, in the order told", got)
	}
	if latest := w.apps[types.NamespacedName{Namespace: "ns", Name: "a"}].latest; latest.traffic.Connects != 12 ||
		latest.condition.Status != metav1.ConditionTrue {
		t.Errorf("a's latest state is %+v, want the last read's (12 connects, True)", latest)
	}
}
