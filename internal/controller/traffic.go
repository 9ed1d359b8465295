package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// The traffic watch tells, per SpectrumApp, what Cloudflare's analytics say
// of its traffic: status.traffic, the OriginsHealthy condition, and an
// Event when its origins start and stop failing.
//
// It runs beside the reconciler, not inside it. Analytics answer per zone
// (one request for all of a zone's applications), while reconciles are per
// app and happen only when something changed: polling from each reconcile
// would cost a request per app, and would need a reconcile of every app
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
	// OriginsHealthy, in whole minutes; DefaultTrafficWindow when zero.
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
	// DefaultTrafficInterval is the step of Cloudflare's series: a read
	// more often would find the same last minute.
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
	requestsPerZone = 1
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
	// crossings are the apps whose OriginsHealthy changed and is not yet
	// written (record), in the order told, each once (queued):
	// writeCrossings writes each one's latest state as the budget allows,
	// and wakes on crossed.
	crossings []types.NamespacedName
	queued    map[types.NamespacedName]bool
	crossed   chan struct{}
}

// trafficKey is a zone read with one credentials Secret's token.
type trafficKey struct {
	zoneID string
	creds  v1alpha1.SecretKey
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
	// subject names the app of a queued crossing for its write and its
	// Event (subjectOf): not the cache's object, which it would keep alive.
	subject   *v1alpha1.SpectrumApp
	writtenAt time.Time
	seen      time.Time
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
		queued:  map[types.NamespacedName]bool{},
		crossed: make(chan struct{}, 1),
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
	reads.Go(func() { w.writeCrossings(ctx) })
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
			version := w.secretVersion(ctx, creds.NamespacedName)
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
func (w *trafficWatch) zoneApps(ctx context.Context, zoneID string) (map[v1alpha1.SecretKey][]*appcache.Record, error) {
	groups := map[v1alpha1.SecretKey][]*appcache.Record{}
	var view v1alpha1.SpectrumApp
	for _, record := range w.r.zoneApps.of(zoneID) {
		record.ViewInto(&view)
		app := &view
		if app.Status.ApplicationID == "" || !app.DeletionTimestamp.IsZero() || app.Policy() == v1alpha1.ReconcilePolicySkip {
			continue
		}
		creds := app.CredentialsSecret(w.r.DefaultCredentials)
		if creds.Name == "" {
			continue
		}
		if app.UsesDefaultCredentials() && w.r.checkGrant(ctx, creds.NamespacedName, app) != nil {
			continue // its reconcile says why
		}
		groups[creds] = append(groups[creds], record)
	}
	return groups, nil
}

// read reads one zone's traffic with one token, tells it to its apps, and
// returns when the zone is next due, and whether Cloudflare refused the
// token its analytics.
func (w *trafficWatch) read(ctx context.Context, key trafficKey, apps []*appcache.Record) (time.Time, bool) {
	log := w.log.WithValues("zone", key.zoneID, "secret", key.creds.NamespacedName)
	token, err := w.r.token(ctx, key.creds)
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
		ids = append(ids, app.ApplicationID())
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
		if observed, ok := observedTraffic(traffic, app.ApplicationID()); ok {
			w.tell(ctx, app.View(), observed)
		}
	}
	return time.Now().Add(interval), false
}

// interval is how often a zone of these credentials is read: the minimum,
// or longer when the token's share of the budget cannot read all its zones
// in it (more zones, or a budget that runs low).
func (w *trafficWatch) interval(creds v1alpha1.SecretKey, reader spectrum.TrafficReader) time.Duration {
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
