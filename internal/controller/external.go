package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// cloudflareApp is the one seam between a SpectrumApp and its application at
// Cloudflare: it observes, creates, updates and deletes that application,
// and tells the drift check whether it changed (Drifted),
// and owns what that takes (the zone listings, adoption by hostname and
// protocol, the check that no other SpectrumApp claims what it would adopt,
// and when a create whose answer was lost may still land). It never writes
// to the apiserver; the reconciler records what it reports.
type cloudflareApp struct {
	cf     spectrum.Client
	zoneID string
	zones  *zoneCache
	claims claimant
	app    *v1alpha1.SpectrumApp
	// requestTimeout bounds every request to Cloudflare (a create's is
	// shorter still: createTimeout).
	requestTimeout time.Duration
}

// external is the seam's verbs, as the reconciler and the drift check use
// them; cloudflareApp is the one implementation, and tests stub it to drive
// each branch of a reconcile.
type external interface {
	Observe(ctx context.Context) (observation, error)
	TakeTurn(ctx context.Context) error
	Create(ctx context.Context, recordedAt time.Time) (spectrum.App, error)
	Update(ctx context.Context, observed spectrum.App) (spectrum.App, error)
	Delete(ctx context.Context) (deletion, error)
	Drifted(ctx context.Context, notBefore time.Time) (bool, error)
}

var _ external = (*cloudflareApp)(nil)

// claimant finds the SpectrumApp, other than app, that manages
// applicationID; "" when none does.
type claimant interface {
	claimant(ctx context.Context, applicationID string, app *v1alpha1.SpectrumApp) (types.NamespacedName, error)
}

// observation is what Observe found at Cloudflare.
type observation struct {
	// exists is true when the application was found.
	exists bool
	// app is the application as Cloudflare holds it.
	app spectrum.App
	// adopted is true when it was found by hostname and protocol rather
	// than by the recorded ID: made outside Kubernetes, or by a create of
	// ours whose answer was lost.
	adopted bool
	// differences names the fields in which it differs from the spec.
	differences []string
	// unconfirmed, when the application was not found, is how long until
	// a create of ours that may still be in flight would have landed:
	// until then, absence cannot be believed.
	unconfirmed time.Duration
}

// Observe finds the application: by the ID in status, and by hostname and
// protocol when no ID is recorded (adoption) or a create of ours may have
// been applied unseen.
func (e *cloudflareApp) Observe(ctx context.Context) (observation, error) {
	found, ok, err := e.byRecordedID(ctx)
	if err != nil {
		return observation{}, err
	}
	if ok {
		return e.observed(found, false), nil
	}
	if e.app.Status.ApplicationID != "" && e.app.UnsettledCreate() == nil {
		// Deleted outside the operator, and no create of ours is pending:
		// there is nothing to look for.
		return observation{}, nil
	}
	found, ok, wait, err := e.byNameAfterPendingCreate(ctx)
	if err != nil || !ok {
		return observation{unconfirmed: wait}, err
	}
	return e.observed(found, true), nil
}

func (e *cloudflareApp) observed(app spectrum.App, adopted bool) observation {
	return observation{exists: true, app: app, adopted: adopted,
		differences: spectrum.Differences(spectrum.FromSpec(&e.app.Spec), app)}
}

// Drifted tells whether the application an app was found in sync with at
// its last reconcile has changed at Cloudflare since: gone, or configured
// otherwise (under the observe policy: started or stopped matching the
// spec). It reads only a zone listing fetched since notBefore (the drift
// check's previous pass), one listing serving all of the zone's apps; the
// reconcile that follows a drift looks closer.
func (e *cloudflareApp) Drifted(ctx context.Context, notBefore time.Time) (bool, error) {
	observed, found, err := e.zones.byID(ctx, e.cf, e.zoneID, e.app.Status.ApplicationID, notBefore)
	if err != nil {
		return false, err
	}
	differs := !found || spectrum.Differs(spectrum.FromSpec(&e.app.Spec), observed)
	if observing(e.app) {
		// What changed is whether it matches, either way.
		differs = differs != (len(e.app.Status.Differences) > 0)
	}
	return differs, nil
}

// byRecordedID looks up the application whose ID status records.
func (e *cloudflareApp) byRecordedID(ctx context.Context) (spectrum.App, bool, error) {
	zoneID, id := e.zoneID, e.app.Status.ApplicationID
	if id == "" {
		return spectrum.App{}, false, nil
	}
	listed, found, err := e.zones.byID(ctx, e.cf, zoneID, id, time.Time{})
	if err != nil || found {
		return listed, found, err
	}
	// Missing from the zone's listing: confirm with one get before
	// believing it, since the listing may predate it.
	got, err := e.cf.GetApp(ctx, zoneID, id)
	if spectrum.IsNotFound(err) {
		return spectrum.App{}, false, nil
	}
	if err != nil {
		return spectrum.App{}, false, err
	}
	e.zones.put(e.cf, zoneID, got)
	return got, true, nil
}

// byNameAfterPendingCreate looks in the zone for an application with the
// app's hostname and protocol that no other SpectrumApp claims. While a
// create of ours may still land, absence is not believed: it returns how
// long until it can be. After that, only a listing fetched later counts.
func (e *cloudflareApp) byNameAfterPendingCreate(ctx context.Context) (spectrum.App, bool, time.Duration, error) {
	landedBy := e.pendingCreateLandedBy()
	wait := time.Until(landedBy)
	notBefore := landedBy
	if wait > 0 {
		notBefore = time.Time{}
	}
	if e.app.Status.ApplicationID == "" {
		// Whatever existed when the SpectrumApp was made is adopted, not
		// duplicated: only a listing fetched since then can tell.
		notBefore = laterOf(notBefore, e.app.CreationTimestamp.Time)
	}
	spec := &e.app.Spec
	existing, found, err := e.zones.byName(ctx, e.cf, e.zoneID, spec.DNS.Name, spec.Protocol, notBefore)
	if err != nil {
		return spectrum.App{}, false, 0, err
	}
	if !found {
		return spectrum.App{}, false, max(wait, 0), nil
	}
	owner, err := e.claims.claimant(ctx, existing.ID, e.app)
	if err != nil {
		return spectrum.App{}, false, 0, err
	}
	if owner != (types.NamespacedName{}) {
		claimed := &ClaimedError{ApplicationID: existing.ID}
		// A tenant learns nothing of another namespace's objects.
		if owner.Namespace == e.app.Namespace {
			claimed.Owner = owner.Name
		}
		return spectrum.App{}, false, 0, claimed
	}
	if !e.mayAdopt(existing) {
		return spectrum.App{}, false, 0, &ExistsError{ApplicationID: existing.ID, Hostname: spec.DNS.Name, Protocol: spec.Protocol}
	}
	return existing, true, 0, nil
}

// adoptionClockSkew tolerates the difference between this clock, which
// stamps the create record, and Cloudflare's, which stamps created_on.
const adoptionClockSkew = time.Minute

// mayAdopt: an application found by hostname and protocol is taken over
// only when the SpectrumApp asks for it by ID, or when it is the answer of
// this SpectrumApp's own create, lost on the way: the durable create record
// (the create-pending annotation, unsettled) says a create was sent, and the application is no
// older than that record. Anything else (the dashboard's, Terraform's,
// another cluster's) serves traffic someone else configured.
func (e *cloudflareApp) mayAdopt(found spectrum.App) bool {
	if e.app.Annotations[v1alpha1.AdoptApplicationIDAnnotation] == found.ID || e.app.Status.ApplicationID == found.ID {
		return true
	}
	pending := e.app.UnsettledCreate()
	if pending == nil {
		return false
	}
	return found.CreatedOn == nil || !found.CreatedOn.Before(pending.Add(-adoptionClockSkew))
}

// A create's record promises when the create has landed, if it ever will:
// every manager that reads the record, after any restart, waits that long
// before it believes an absent application was never created. The promise
// is kept short, so that an uncertain create that did not land (a manager
// killed mid-create, an answer lost) costs at most 25 s by default:
//   - the create is sent within createSendWindow of the record (at most
//     maxCreateSendWindow), or not at all (the rate limiter fails it fast,
//     as ErrNotSent);
//   - its request is given createTimeout, at most maxCreateTimeout: a
//     create is a small write Cloudflare answers in about a second;
//   - Cloudflare may apply it up to one createTimeout after the client gave
//     up (settle). One applied later still is beyond what any client can
//     tell from none (docs/reliability.md).
const (
	maxCreateSendWindow = 5 * time.Second
	maxCreateTimeout    = 10 * time.Second
)

// createSendWindow is how long after its record a create may still be
// sent; no longer than its request may take.
func (e *cloudflareApp) createSendWindow() time.Duration {
	return min(e.createTimeout(), maxCreateSendWindow)
}

// createTimeout bounds a create's request, and how long Cloudflare may take
// to apply it after the client gave up on it.
func (e *cloudflareApp) createTimeout() time.Duration {
	if e.requestTimeout <= 0 {
		return maxCreateTimeout
	}
	return min(e.requestTimeout, maxCreateTimeout)
}

// createDeadline bounds a create from the moment it is recorded: the wait
// for the rate limit and the request.
func (e *cloudflareApp) createDeadline() time.Duration {
	return e.createSendWindow() + e.createTimeout()
}

// pendingCreateLandedBy is when a create recorded and not yet settled
// has certainly landed, if it ever will: answered or abandoned by its
// deadline, and applied within a createTimeout after that. Zero when no
// create is pending.
func (e *cloudflareApp) pendingCreateLandedBy() time.Time {
	pending := e.app.UnsettledCreate()
	if pending == nil {
		return time.Time{}
	}
	return pending.Add(e.createDeadline() + e.createTimeout())
}

// TakeTurn takes the app's turn in its token's line ahead of a request
// (spectrum.Client.TakeTurn).
func (e *cloudflareApp) TakeTurn(ctx context.Context) error {
	return e.cf.TakeTurn(ctx)
}

// Create asks Cloudflare for the application the spec describes. The
// caller has recorded the create (at recordedAt) first: the create
// must be sent and answered by the deadline that record promises.
func (e *cloudflareApp) Create(ctx context.Context, recordedAt time.Time) (spectrum.App, error) {
	ctx, cancel := context.WithDeadline(ctx, recordedAt.Add(e.createDeadline()))
	defer cancel()
	ctx = budget.WithSendDeadline(ctx, recordedAt.Add(e.createSendWindow()))
	zoneID := e.zoneID
	created, err := e.cf.CreateApp(ctx, zoneID, spectrum.FromSpec(&e.app.Spec))
	if err != nil {
		// The next attempt looks at a fresh listing, so that a create that
		// did land is adopted rather than repeated.
		e.invalidateUnlessNotSent(zoneID, err)
		return spectrum.App{}, err
	}
	e.zones.put(e.cf, zoneID, created)
	return created, nil
}

// Update sends the whole desired configuration, as the API's PUT expects:
// fields the spec leaves unset go back to Cloudflare's defaults.
func (e *cloudflareApp) Update(ctx context.Context, observed spectrum.App) (spectrum.App, error) {
	zoneID := e.zoneID
	updated, err := e.cf.UpdateApp(ctx, zoneID, observed.ID, spectrum.FromSpec(&e.app.Spec))
	if err != nil {
		e.invalidateUnlessNotSent(zoneID, err)
		return spectrum.App{}, err
	}
	e.zones.put(e.cf, zoneID, updated)
	return updated, nil
}

// invalidateUnlessNotSent drops the zone's listing after a write that
// failed, unless it was never sent: a write waiting for its turn changed
// nothing, and a fresh listing for it would cost another request of the
// budget it waits for.
func (e *cloudflareApp) invalidateUnlessNotSent(zoneID string, err error) {
	if !errors.Is(err, spectrum.ErrNotSent) {
		e.zones.invalidate(e.cf, zoneID)
	}
}

// deletion is what Delete did.
type deletion struct {
	// deletedIDs are the applications deleted.
	deletedIDs []string
	// unconfirmed is how long until a pending create would have landed,
	// when it may still: deleting the SpectrumApp now would orphan it.
	unconfirmed time.Duration
}

// Delete deletes only what the SpectrumApp created or adopted: the
// application whose ID status records, and, only when status records a
// pending create, the application with its hostname and protocol that such a
// create may have made unseen. One already gone counts as deleted; one
// another SpectrumApp claims is not ours.
func (e *cloudflareApp) Delete(ctx context.Context) (deletion, error) {
	var d deletion
	if id := e.app.Status.ApplicationID; id != "" {
		if err := e.deleteID(ctx, id); err != nil {
			return d, err
		}
		d.deletedIDs = append(d.deletedIDs, id)
	}
	if e.app.UnsettledCreate() == nil {
		return d, nil
	}
	existing, found, wait, err := e.byNameAfterPendingCreate(ctx)
	var claimed *ClaimedError
	switch {
	case errors.As(err, &claimed):
		return d, nil
	case err != nil:
		return d, err
	case !found:
		d.unconfirmed = wait
		return d, nil
	case existing.ID == e.app.Status.ApplicationID:
		return d, nil
	}
	if err := e.deleteID(ctx, existing.ID); err != nil {
		return d, err
	}
	d.deletedIDs = append(d.deletedIDs, existing.ID)
	return d, nil
}

func (e *cloudflareApp) deleteID(ctx context.Context, id string) error {
	zoneID := e.zoneID
	err := e.cf.DeleteApp(ctx, zoneID, id)
	e.zones.remove(e.cf, zoneID, id)
	if err != nil && !spectrum.IsNotFound(err) {
		return err
	}
	return nil
}

// claimant names another SpectrumApp whose status records applicationID;
// the zero name when there is none. Two SpectrumApps adopting one application would
// fight over it, and deleting either would delete it for both.
func (r *SpectrumAppReconciler) claimant(ctx context.Context, applicationID string, app *v1alpha1.SpectrumApp) (types.NamespacedName, error) {
	// Only adoption asks, which is rare (a lost create, an app made outside
	// Kubernetes), so the zone's apps are scanned rather than every app
	// paying for an index entry of its own ID (docs/benchmarks.md).
	for _, owner := range r.zoneApps.of(app.CloudflareZoneID()) {
		if owner.ApplicationID() == applicationID && owner.GetUID() != app.UID {
			return owner.NamespacedName(), nil
		}
	}
	return types.NamespacedName{}, nil
}

// ClaimedError says the Cloudflare application an app would adopt is
// already managed by another SpectrumApp: two SpectrumApps name the same
// zone, hostname and protocol.
type ClaimedError struct {
	// ApplicationID is the Cloudflare application both would manage.
	ApplicationID string
	// Owner is the name of the SpectrumApp that manages it when it is in
	// the same namespace; empty when it is in another, which this one's
	// users are not told about.
	Owner string
}

func (e *ClaimedError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("Cloudflare application %s, with the same hostname and protocol, is already managed by a SpectrumApp in another namespace", e.ApplicationID)
	}
	return fmt.Sprintf("Cloudflare application %s, with the same hostname and protocol, is already managed by SpectrumApp %s in this namespace", e.ApplicationID, e.Owner)
}

// ExistsError says an application with the app's hostname and protocol
// already exists at Cloudflare, made by someone else, and the SpectrumApp
// did not ask to adopt it.
type ExistsError struct {
	ApplicationID, Hostname, Protocol string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("Cloudflare application %s already serves %s with protocol %s; this SpectrumApp did not create it and was not asked to adopt it",
		e.ApplicationID, e.Hostname, e.Protocol)
}

// Classification implements failure.Explained: taking over traffic someone
// else configured is a person's decision.
func (e *ExistsError) Classification() failure.Classification {
	return failure.Explain(failure.NeedsHuman, v1alpha1.ReasonApplicationExists, fmt.Sprintf(
		"To manage that application from this SpectrumApp (its spec then replaces the application's configuration, and deleting the SpectrumApp deletes it per deletionPolicy): kubectl annotate spectrumapp NAME %s=%s. Otherwise give this SpectrumApp another dns.name or protocol.",
		v1alpha1.AdoptApplicationIDAnnotation, e.ApplicationID), e.Error())
}

// Classification implements failure.Explained: only a person can say
// which SpectrumApp should own the application.
func (e *ClaimedError) Classification() failure.Classification {
	return failure.Explain(failure.NeedsHuman, v1alpha1.ReasonApplicationClaimed,
		"Give this SpectrumApp another dns.name or protocol, or delete one of the two (in another namespace, ask its owners).", e.Error())
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
