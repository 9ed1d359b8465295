package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"golang.org/x/time/rate"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// The traffic watch tells, per SpectrumApp, what Cloudflare's analytics say
// of its traffic: status.traffic, the OriginsHealthy condition, and an
// Event when its origins start and stop failing.
//
// It runs beside the reconciler, not inside it. Analytics answer per zone
// (two requests for all of a zone's applications), while reconciles are per
// app and happen only when something changed: polling from each reconcile
// would cost two requests per app, and would need a reconcile of every app
// every minute. So one runnable (on the leader) keeps a schedule per zone
// and API token, reads the zone when it is due, and writes each app's
// status itself. The Cloudflare side goes through spectrum.TrafficReader
// (ZoneTraffic), on spare slots of the token's budget only: configuration
// never waits for traffic.
//
// The watch owns its part of status through server-side apply (field
// manager trafficFieldOwner): status.traffic and the OriginsHealthy entry
// of conditions, a list keyed by type, so its writes never touch what the
// reconciler writes. The reconciler's merge patches replace the whole
// conditions list, so before one it carries the watch's latest
// OriginsHealthy into the list it sends (carry), which keeps it from
// sending back an older one.

// TrafficOptions configure the traffic watch.
type TrafficOptions struct {
	// MinInterval is the shortest time between two reads of a zone with
	// one token; DefaultTrafficInterval when zero. The interval stretches
	// as the token's zones multiply or its budget runs low.
	MinInterval time.Duration
	// Window is how far back connects and origin errors are counted for
	// OriginsHealthy; DefaultTrafficWindow when zero.
	Window time.Duration
	// DeniedBackoff is how long a zone is not read again with a token
	// Cloudflare refused its analytics; DefaultAnalyticsDeniedBackoff when
	// zero.
	DeniedBackoff time.Duration
	// StatusWritesPerSecond bounds the watch's status writes: a change of
	// OriginsHealthy waits for its turn, a refresh of numbers is skipped
	// when there is none (and made at a later read);
	// DefaultTrafficStatusWrites when zero.
	StatusWritesPerSecond float64
	// Metrics, when set, exports the traffic (see TrafficMetrics).
	Metrics *TrafficMetrics
}

// Defaults of TrafficOptions.
const (
	// DefaultTrafficInterval matches aggregate/current, which covers the
	// last minute.
	DefaultTrafficInterval = time.Minute
	// DefaultTrafficWindow is a few minutes, so one failed connection
	// does not decide.
	DefaultTrafficWindow          = 5 * time.Minute
	DefaultAnalyticsDeniedBackoff = 30 * time.Minute
	// DefaultTrafficStatusWrites keeps the apiserver's load from status
	// refreshes to about 20 writes per second at most: at 10,000 busy apps
	// each is refreshed every eight minutes or so.
	DefaultTrafficStatusWrites = 20
)

const (
	// trafficFieldOwner is the field manager of the watch's status writes.
	trafficFieldOwner = "spectrum-operator-traffic"
	// requestsPerZone is what one read of a zone costs (ZoneTraffic).
	requestsPerZone = 2
	// trafficRefresh is how old status.traffic may grow while its numbers
	// do not change.
	trafficRefresh = 10 * time.Minute
	// maxTrafficPolls bounds the zones read at once.
	maxTrafficPolls = 4
	// maxSpareWait bounds a read's wait for spare slots of the budget.
	maxSpareWait = 10 * time.Second
	// originErrorShare is the share of connects failing to reach an
	// origin from which OriginsHealthy is False: one in ten.
	originErrorShare = 0.1
)

func (o TrafficOptions) withDefaults() TrafficOptions {
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultTrafficInterval
	}
	if o.Window <= 0 {
		o.Window = DefaultTrafficWindow
	}
	if o.DeniedBackoff <= 0 {
		o.DeniedBackoff = DefaultAnalyticsDeniedBackoff
	}
	if o.StatusWritesPerSecond <= 0 {
		o.StatusWritesPerSecond = DefaultTrafficStatusWrites
	}
	return o
}

// trafficWatch is the runnable.
type trafficWatch struct {
	r      *SpectrumAppReconciler
	opts   TrafficOptions
	log    logr.Logger
	writes *rate.Limiter
	// polls bounds the zones read at once.
	polls chan struct{}

	mu sync.Mutex
	// apps is what the watch last found of each app.
	apps map[types.NamespacedName]*appTraffic
	// zones is each zone's schedule, per credentials; zoneDue when the
	// first of a zone's schedules is due, so that a zone is listed only
	// then (listing a zone of 10,000 apps every tick would cost more than
	// the reads).
	zones   map[trafficKey]*zoneSchedule
	zoneDue map[string]time.Time
}

// trafficKey is a zone read with one credentials Secret's token.
type trafficKey struct {
	zoneID string
	creds  credentials
}

type zoneSchedule struct {
	next    time.Time
	reading bool
	// seen is when the zone last had apps with these credentials.
	seen time.Time
	// deniedWith is the credentials Secret's resourceVersion when
	// Cloudflare refused its token the analytics; "" when it did not. A
	// new version may hold a token that may read them.
	deniedWith string
}

// appTraffic is one app's traffic: latest is what status should show,
// shown what it was last written with.
type appTraffic struct {
	latest, shown trafficState
	writtenAt     time.Time
	seen          time.Time
	// numbers are the last numbers read, for the metrics; nil before.
	numbers *v1alpha1.Traffic
}

type trafficState struct {
	condition metav1.Condition
	traffic   *v1alpha1.Traffic
}

func newTrafficWatch(r *SpectrumAppReconciler, opts TrafficOptions) *trafficWatch {
	opts = opts.withDefaults()
	w := &trafficWatch{
		r:       r,
		opts:    opts,
		log:     ctrl.Log.WithName("traffic"),
		writes:  rate.NewLimiter(rate.Limit(opts.StatusWritesPerSecond), int(max(opts.StatusWritesPerSecond, 1))),
		polls:   make(chan struct{}, maxTrafficPolls),
		apps:    map[types.NamespacedName]*appTraffic{},
		zones:   map[trafficKey]*zoneSchedule{},
		zoneDue: map[string]time.Time{},
	}
	opts.Metrics.attach(w)
	return w
}

// NeedLeaderElection is true: only the leader writes status.
func (w *trafficWatch) NeedLeaderElection() bool { return true }

// Start looks for zones that are due a few times per interval.
func (w *trafficWatch) Start(ctx context.Context) error {
	tick := time.NewTicker(min(w.opts.MinInterval/4, 5*time.Second))
	defer tick.Stop()
	var reads sync.WaitGroup
	defer reads.Wait()
	for {
		w.readDue(ctx, &reads)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// readDue starts a read of every zone that is due, a few at a time.
func (w *trafficWatch) readDue(ctx context.Context, reads *sync.WaitGroup) {
	now := time.Now()
	for _, zoneID := range w.r.zones.zoneIDs() {
		if ctx.Err() != nil {
			return
		}
		if !w.zoneMayBeDue(zoneID, now) {
			continue
		}
		groups, err := w.zoneApps(ctx, zoneID)
		if err != nil {
			w.log.Error(err, "Listing SpectrumApps for their traffic", "zone", zoneID)
			continue
		}
		for creds, apps := range groups {
			key := trafficKey{zoneID: zoneID, creds: creds}
			version := w.secretVersion(ctx, creds.secret)
			if !w.due(key, now, version) {
				continue
			}
			select {
			case w.polls <- struct{}{}:
			case <-ctx.Done():
				w.done(key, now, false, "")
				return
			}
			reads.Go(func() {
				defer func() { <-w.polls }()
				next, denied := w.read(ctx, key, apps)
				w.done(key, next, denied, version)
			})
		}
	}
	w.sweep(now)
}

// zoneMayBeDue tells whether one of the zone's schedules may be due: the
// first is, or the zone's credentials Secret may have changed since its
// token was refused (looked at once per minimum interval).
func (w *trafficWatch) zoneMayBeDue(zoneID string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	due, ok := w.zoneDue[zoneID]
	if ok && now.Before(due) {
		return false
	}
	// Until a read says otherwise: a zone with nothing to read is looked
	// at again after the minimum interval.
	w.zoneDue[zoneID] = now.Add(w.opts.MinInterval)
	return true
}

// due marks key as being read when it is due: at its time, or at once when
// its token was refused and the credentials Secret has changed since.
func (w *trafficWatch) due(key trafficKey, now time.Time, secretVersion string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.zones[key]
	if !ok {
		s = &zoneSchedule{}
		w.zones[key] = s
	}
	s.seen = now
	if s.deniedWith != "" && s.deniedWith != secretVersion {
		s.next, s.deniedWith = now, ""
	}
	if s.reading || now.Before(s.next) {
		return false
	}
	s.reading = true
	return true
}

// done records when key is next due, and whether its token was refused
// with the credentials Secret at secretVersion.
func (w *trafficWatch) done(key trafficKey, next time.Time, denied bool, secretVersion string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.zones[key]; ok {
		s.reading, s.next, s.deniedWith = false, next, ""
		if denied {
			s.deniedWith = secretVersion
		}
	}
	// The zone is listed again when its first schedule is due, and each
	// minimum interval while a token is refused, for a new Secret version.
	now := time.Now()
	due := now.Add(w.opts.DeniedBackoff)
	for k, s := range w.zones {
		if k.zoneID != key.zoneID || s.reading {
			continue // a read in flight says when it is due when it ends
		}
		due = earliest(due, s.next)
		if s.deniedWith != "" {
			due = earliest(due, now.Add(w.opts.MinInterval))
		}
	}
	w.zoneDue[key.zoneID] = due
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// secretVersion is the credentials Secret's resourceVersion, as the cache
// (of metadata only) holds it; "" when it cannot tell.
func (w *trafficWatch) secretVersion(ctx context.Context, secret types.NamespacedName) string {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := w.r.Get(ctx, secret, meta); err != nil {
		return ""
	}
	return meta.ResourceVersion
}

// zoneApps groups by credentials the zone's apps whose traffic is read:
// those with a Cloudflare application, not being deleted, and not under
// the skip policy, which makes no Cloudflare call.
func (w *trafficWatch) zoneApps(ctx context.Context, zoneID string) (map[credentials][]*v1alpha1.SpectrumApp, error) {
	var apps v1alpha1.SpectrumAppList
	if err := w.r.List(ctx, &apps, client.MatchingFields{zoneIndex: zoneID}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	groups := map[credentials][]*v1alpha1.SpectrumApp{}
	for i := range apps.Items {
		app := &apps.Items[i]
		if app.Status.ApplicationID == "" || !app.DeletionTimestamp.IsZero() || policyOf(app) == v1alpha1.ReconcilePolicySkip {
			continue
		}
		secret, key := w.r.credentialsSecret(app)
		if secret.Name == "" {
			continue
		}
		if app.Spec.CredentialsRef == nil && w.r.checkGrant(ctx, secret, app) != nil {
			continue // its reconcile says why
		}
		creds := credentials{secret: secret, key: key}
		groups[creds] = append(groups[creds], app)
	}
	return groups, nil
}

// read reads one zone's traffic with one token, tells it to its apps, and
// returns when the zone is next due, and whether Cloudflare refused the
// token its analytics.
func (w *trafficWatch) read(ctx context.Context, key trafficKey, apps []*v1alpha1.SpectrumApp) (time.Time, bool) {
	log := w.log.WithValues("zone", key.zoneID, "secret", key.creds.secret)
	token, err := w.r.token(ctx, key.creds.secret, key.creds.key)
	if err != nil {
		return time.Now().Add(w.opts.MinInterval), false // its reconcile says why
	}
	reader, ok := w.r.Connector.ForToken(token).(spectrum.TrafficReader)
	if !ok {
		return time.Now().Add(w.opts.DeniedBackoff), false
	}
	interval := w.interval(key.creds, reader)
	ids := make([]string, 0, len(apps))
	for _, app := range apps {
		ids = append(ids, app.Status.ApplicationID)
	}
	// A token whose budget is busy has no spare slot for a while: the zone
	// is looked at again soon, without holding up other tokens' zones.
	readCtx, cancel := context.WithTimeout(ctx, min(interval, maxSpareWait))
	defer cancel()
	traffic, err := reader.ZoneTraffic(readCtx, key.zoneID, ids, w.opts.Window)
	switch {
	case ctx.Err() != nil:
		return time.Now(), false
	case spectrum.AnalyticsDenied(err):
		failure := spectrum.Classify(err)
		log.Info("Cloudflare refused the token its analytics; traffic is not read with it for a while",
			"reason", failure.Reason, "httpStatus", failure.HTTPStatus, "rayID", failure.RayID, "retryIn", w.opts.DeniedBackoff.String())
		w.tellDenied(ctx, apps, failure)
		return time.Now().Add(w.opts.DeniedBackoff), true
	case errors.Is(err, spectrum.ErrNotSent):
		// Looked at again within a tick.
		log.V(1).Info("No spare slot of the token's budget for the zone's traffic")
		return time.Now(), false
	case err != nil:
		failure := spectrum.Classify(err)
		log.V(1).Info("Reading the zone's traffic failed; reading it next interval",
			"reason", failure.Reason, "httpStatus", failure.HTTPStatus, "rayID", failure.RayID)
		return time.Now().Add(interval), false
	}
	for _, app := range apps {
		w.tell(ctx, app, observedTraffic(traffic, app.Status.ApplicationID, w.opts.Window))
	}
	return time.Now().Add(interval), false
}

// interval is how often a zone of these credentials is read: the minimum,
// or longer when the token's share of the budget cannot read all its zones
// in it (more zones, or a budget that runs low).
func (w *trafficWatch) interval(creds credentials, reader spectrum.TrafficReader) time.Duration {
	w.mu.Lock()
	zones := 0
	for key := range w.zones {
		if key.creds == creds {
			zones++
		}
	}
	w.mu.Unlock()
	pace := reader.TrafficPace()
	if pace <= 0 {
		return w.opts.MinInterval
	}
	need := time.Duration(float64(requestsPerZone*zones) / pace * float64(time.Second))
	return max(w.opts.MinInterval, need)
}

// observedTraffic is an app's part of its zone's traffic.
func observedTraffic(zone spectrum.ZoneTraffic, appID string, window time.Duration) v1alpha1.Traffic {
	minute, events := zone.LastMinute[appID], zone.Events[appID]
	return v1alpha1.Traffic{
		Connections:   minute.Connections,
		BytesIngress:  minute.BytesIngress,
		BytesEgress:   minute.BytesEgress,
		Connects:      events.Connects,
		OriginErrors:  events.OriginErrors,
		WindowSeconds: int32(window / time.Second),
		ReadAt:        metav1.NewTime(zone.ReadAt.UTC().Truncate(time.Second)),
	}
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
func (w *trafficWatch) tellDenied(ctx context.Context, apps []*v1alpha1.SpectrumApp, failure spectrum.Classification) {
	message := failure.Message + fmt.Sprintf(" The operator reads this zone's traffic with this token again in %s, or when the credentials Secret changes.", w.opts.DeniedBackoff)
	for _, app := range apps {
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
// is due a refresh.
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

	crossed := shown.condition.Status != state.condition.Status || shown.condition.Reason != state.condition.Reason
	changed := crossed || shown.condition.Message != state.condition.Message || !sameNumbers(shown.traffic, state.traffic)
	switch {
	case crossed:
		// Told at once, but still within the write budget: the first read
		// of 10,000 apps is 10,000 new conditions.
		if w.writes.Wait(ctx) != nil {
			return
		}
	case changed && w.writes.Allow():
	case !changed && !fresh && state.traffic != nil && w.writes.Allow():
	default:
		return
	}
	if err := w.write(ctx, app, state); err != nil {
		if client.IgnoreNotFound(err) != nil {
			w.log.Error(err, "Writing the traffic of a SpectrumApp", "app", key)
		}
		return
	}
	w.opts.Metrics.wrote()
	w.mu.Lock()
	held.shown, held.writtenAt = state, now
	w.mu.Unlock()
	if crossed {
		w.tellCrossing(app, shown.condition, state.condition)
	}
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
