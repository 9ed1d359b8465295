package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// What the traffic watch (traffic.go) tells each app of what it read:
// status.traffic, the OriginsHealthy condition judged from it, and the
// Events of crossing into and out of trouble.

// observedTraffic is an app's part of its zone's traffic; false when the
// answer did not tell it.
func observedTraffic(zone spectrum.ZoneTraffic, appID string) (v1alpha1.Traffic, bool) {
	app, ok := zone.Apps[appID]
	return v1alpha1.Traffic{
		Connections:   app.Connections,
		BytesIngress:  app.BytesIngress,
		BytesEgress:   app.BytesEgress,
		Connects:      app.Connects,
		OriginErrors:  app.OriginErrors,
		WindowSeconds: int32(zone.Until.Sub(zone.Since) / time.Second),
		ReadAt:        metav1.NewTime(zone.ReadAt.UTC().Truncate(time.Second)),
	}, ok
}

// originsHealthy judges the origins from the window's events.
func originsHealthy(t v1alpha1.Traffic) (metav1.ConditionStatus, string, string) {
	window := fmt.Sprintf("the last %s", time.Duration(t.WindowSeconds)*time.Second)
	if t.WindowSeconds%60 == 0 {
		window = fmt.Sprintf("the last %d minutes", t.WindowSeconds/60)
	}
	switch {
	case t.OriginErrors > 0 && float64(t.OriginErrors) >= originErrorShare*float64(t.Connects):
		return metav1.ConditionFalse, v1alpha1.ReasonOriginErrors, fmt.Sprintf(
			"Cloudflare could not reach an origin for %d of %d connections in %s (originError events). "+
				"Check that the origins are up and accept connections from Cloudflare's IP ranges.",
			t.OriginErrors, t.Connects, window)
	case t.Connects == 0 && t.OriginErrors == 0:
		return metav1.ConditionUnknown, v1alpha1.ReasonNoTraffic, fmt.Sprintf(
			"No connections in %s: nothing tells whether the origins answer.", window)
	}
	return metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering, fmt.Sprintf(
		"Cloudflare reached the origins: %d connections, %d origin errors in %s.", t.Connects, t.OriginErrors, window)
}

// tell records an app's traffic, writes it when it should, and tells a
// crossing into or out of trouble as an Event.
func (w *trafficWatch) tell(ctx context.Context, app *v1alpha1.SpectrumApp, traffic v1alpha1.Traffic) {
	status, reason, message := originsHealthy(traffic)
	w.record(ctx, app, trafficState{
		condition: w.condition(app, status, reason, message),
		traffic:   &traffic,
	})
}

// tellDenied tells each app that its traffic cannot be read.
func (w *trafficWatch) tellDenied(ctx context.Context, apps []*appcache.Record, failure failure.Classification) {
	message := failure.Message + fmt.Sprintf(" The operator reads this zone's traffic with this token again in %s, or when the credentials Secret changes.", w.opts.DeniedBackoff)
	for _, record := range apps {
		app := record.View()
		w.record(ctx, app, trafficState{
			condition: w.condition(app, metav1.ConditionUnknown, v1alpha1.ReasonAnalyticsNotPermitted, message),
		})
	}
}

// condition is OriginsHealthy as it is to be shown, keeping the time of
// its last transition.
func (w *trafficWatch) condition(app *v1alpha1.SpectrumApp, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	c := metav1.Condition{
		Type: v1alpha1.ConditionOriginsHealthy, Status: status, Reason: reason,
		Message: truncate(message, maxConditionMessage), ObservedGeneration: app.Generation,
		LastTransitionTime: metav1.NewTime(time.Now().UTC().Truncate(time.Second)),
	}
	if previous := w.previous(app); previous != nil && previous.Status == status {
		c.LastTransitionTime = previous.LastTransitionTime
	}
	return c
}

// previous is the OriginsHealthy the app shows: the watch's, or the
// object's after a restart.
func (w *trafficWatch) previous(app *v1alpha1.SpectrumApp) *metav1.Condition {
	w.mu.Lock()
	defer w.mu.Unlock()
	if held, ok := w.apps[client.ObjectKeyFromObject(app)]; ok {
		c := held.shown.condition
		return &c
	}
	return meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionOriginsHealthy)
}

// record keeps state as the app's latest, and writes it when the condition
// changed, or the numbers did (as the write budget allows), or status.traffic
// is due a refresh. A changed condition is queued for writeCrossings, which
// writes it as soon as the budget allows, not waited for: the read goes
// on, and its zone is read again on time (the first read of 10,000 apps
// is 10,000 new conditions, over eight minutes of writes).
func (w *trafficWatch) record(ctx context.Context, app *v1alpha1.SpectrumApp, state trafficState) {
	key := client.ObjectKeyFromObject(app)
	now := time.Now()
	w.mu.Lock()
	held, ok := w.apps[key]
	if !ok {
		held = &appTraffic{}
		if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionOriginsHealthy); c != nil {
			held.shown = trafficState{condition: *c, traffic: app.Status.Traffic}
		}
		w.apps[key] = held
	}
	held.latest, held.seen = state, now
	if state.traffic != nil {
		held.numbers = state.traffic
	}
	shown := held.shown
	fresh := now.Sub(held.writtenAt) < trafficRefresh
	w.mu.Unlock()

	crossed := crosses(shown, state)
	changed := crossed || shown.condition.Message != state.condition.Message || !sameNumbers(shown.traffic, state.traffic)
	switch {
	case crossed:
		// Written by writeCrossings alone, so that one crossing is never
		// written (and told) twice by a read and the writer at once.
		w.queueCrossing(key, held, subjectOf(app))
		return
	case changed && w.writes.Allow():
	case !changed && !fresh && state.traffic != nil && w.writes.Allow():
	default:
		return
	}
	w.show(ctx, held, app, shown, state)
}

// crosses tells whether state's OriginsHealthy is another than shown's.
func crosses(shown, state trafficState) bool {
	return shown.condition.Status != state.condition.Status || shown.condition.Reason != state.condition.Reason
}

// show writes state, which held remembers as shown, and tells the app a
// crossing into or out of trouble from what was shown before.
func (w *trafficWatch) show(ctx context.Context, held *appTraffic, app *v1alpha1.SpectrumApp, shown, state trafficState) {
	if err := w.write(ctx, app, state); err != nil {
		if client.IgnoreNotFound(err) != nil {
			w.log.Error(err, "Writing the traffic of a SpectrumApp", "app", client.ObjectKeyFromObject(app))
		}
		return
	}
	w.opts.Metrics.wrote()
	w.mu.Lock()
	held.shown, held.writtenAt = state, time.Now()
	w.mu.Unlock()
	if crosses(shown, state) {
		w.tellCrossing(app, shown.condition, state.condition)
	}
}

// queueCrossing queues the app for writeCrossings, once.
func (w *trafficWatch) queueCrossing(key types.NamespacedName, held *appTraffic, subject *v1alpha1.SpectrumApp) {
	w.mu.Lock()
	held.subject = subject
	if !w.queued[key] {
		w.queued[key] = true
		w.crossings = append(w.crossings, key)
	}
	w.mu.Unlock()
	select {
	case w.crossed <- struct{}{}:
	default: // already woken
	}
}

// writeCrossings writes the queued crossings as the write budget allows,
// each app's latest state: one that has crossed back to what is shown is
// not written (its numbers are, at a later read).
func (w *trafficWatch) writeCrossings(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.crossed:
		}
		for w.crossingsQueued() {
			if w.writes.Wait(ctx) != nil {
				return
			}
			key := w.nextCrossing()
			w.mu.Lock()
			held, ok := w.apps[key] // gone when forgotten since
			var app *v1alpha1.SpectrumApp
			var shown, latest trafficState
			if ok {
				app, shown, latest = held.subject, held.shown, held.latest
			}
			w.mu.Unlock()
			if ok && app != nil && crosses(shown, latest) {
				w.show(ctx, held, app, shown, latest)
			}
		}
	}
}

// subjectOf is what a write of the app's traffic and an Event about it
// need of the object.
func subjectOf(app *v1alpha1.SpectrumApp) *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{TypeMeta: app.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Namespace: app.Namespace, Name: app.Name, UID: app.UID, ResourceVersion: app.ResourceVersion, Generation: app.Generation}}
}

func (w *trafficWatch) crossingsQueued() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.crossings) > 0
}

// nextCrossing takes the first queued crossing; only writeCrossings takes
// them, so there is one when crossingsQueued said so.
func (w *trafficWatch) nextCrossing() types.NamespacedName {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := w.crossings[0]
	w.crossings = w.crossings[1:]
	delete(w.queued, key)
	return key
}

// tellCrossing tells, once each, an app's origins starting to fail and
// answering again.
func (w *trafficWatch) tellCrossing(app *v1alpha1.SpectrumApp, before, after metav1.Condition) {
	switch {
	case after.Status == metav1.ConditionFalse && before.Status != metav1.ConditionFalse:
		w.r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, v1alpha1.ReasonOriginErrors, "Traffic", after.Message)
	case after.Status == metav1.ConditionTrue && before.Status == metav1.ConditionFalse:
		w.r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, v1alpha1.ReasonOriginsRecovered, "Traffic", after.Message)
	}
}

func sameNumbers(a, b *v1alpha1.Traffic) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	}
	x, y := *a, *b
	x.ReadAt, y.ReadAt = metav1.Time{}, metav1.Time{}
	return x == y
}

// write applies the watch's part of the app's status: status.traffic
// (removed when state has none) and the OriginsHealthy condition.
func (w *trafficWatch) write(ctx context.Context, app *v1alpha1.SpectrumApp, state trafficState) error {
	status := map[string]any{"conditions": []metav1.Condition{state.condition}}
	if state.traffic != nil {
		status["traffic"] = state.traffic
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "SpectrumApp",
		"metadata":   map[string]any{"namespace": app.Namespace, "name": app.Name},
		"status":     status,
	})
	if err != nil {
		return err
	}
	return w.r.Status().Patch(ctx, appMetadata(app), client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(trafficFieldOwner), client.ForceOwnership)
}

// carry puts the watch's latest OriginsHealthy into a status the reconciler
// is about to patch, in before and app alike: a merge patch sends the whole
// conditions list, which must not bring back an older OriginsHealthy, and
// the condition alone never makes the reconciler write.
func (w *trafficWatch) carry(before, app *v1alpha1.SpectrumApp) {
	if w == nil {
		return
	}
	w.mu.Lock()
	held, ok := w.apps[client.ObjectKeyFromObject(app)]
	var c metav1.Condition
	if ok {
		c = held.latest.condition
	}
	w.mu.Unlock()
	if !ok || c.Type == "" {
		return
	}
	c.ObservedGeneration = app.Generation
	for _, status := range []*v1alpha1.SpectrumAppStatus{&before.Status, &app.Status} {
		meta.RemoveStatusCondition(&status.Conditions, v1alpha1.ConditionOriginsHealthy)
		status.Conditions = append(status.Conditions, c)
	}
}

// sweep forgets apps and zones not seen for a long while: deleted, moved
// to the skip policy, or their zone gone from the operator's listings.
func (w *trafficWatch) sweep(now time.Time) {
	horizon := 3 * max(w.opts.MinInterval, w.opts.DeniedBackoff)
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, s := range w.zones {
		if !s.reading && now.Sub(s.seen) > horizon {
			delete(w.zones, key)
			delete(w.zoneDue, key.zoneID)
		}
	}
	for key, a := range w.apps {
		if now.Sub(a.seen) > horizon {
			delete(w.apps, key)
		}
	}
}

// forget drops an app at once (deleted, released).
func (w *trafficWatch) forget(key types.NamespacedName) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.apps, key)
}
