package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
)

// These tables drive every branch of a reconcile against a stub of the seam
// (external), as crossplane-runtime tests its managed reconciler against a
// stub ExternalClient: each case says what Cloudflare answers, and checks
// the conditions, the requeue, the events and the calls made at Cloudflare.
//
// The SpectrumApp itself lives in controller-runtime's fake client, built
// with the scheme: Reconcile reads it, writes the finalizer, the durable
// create record (conditionally on the resourceVersion read) and status.
// That is enough here because these tests are about branching; the envtest
// suites (suite_test.go and the tests beside it) prove the same writes
// against a real kube-apiserver, and the real seam against the simulator.

const (
	branchZone = "0123456789abcdef0123456789abcdef"
	branchID   = "app-1"
)

var branchKey = client.ObjectKey{Namespace: "team-a", Name: "ssh"}

// errNotStubbed answers a verb the case did not expect to be called; the
// call is also recorded, so the case's calls do not match.
var errNotStubbed = errors.New("not stubbed: this case expects no such call")

// stubExternal stands in for cloudflareApp. Each verb answers as the case
// says; a verb without an answer fails the test when called. calls records
// every call, connect included, in order, and is compared whole: a case
// that expects no call fails on any.
type stubExternal struct {
	t *testing.T
	// store is where the reconciler keeps the SpectrumApp, so that Create
	// can tell whether the create record was durable before the send.
	store client.Reader

	connectErr error
	observe    func() (observation, error)
	takeTurn   func() error
	create     func() (spectrum.App, error)
	update     func(observed spectrum.App) (spectrum.App, error)
	delete     func() (deletion, error)

	calls []string
}

var _ external = (*stubExternal)(nil)

func (s *stubExternal) connect(_ context.Context, _ *v1alpha1.SpectrumApp) (external, error) {
	s.calls = append(s.calls, "connect")
	if s.connectErr != nil {
		return nil, s.connectErr
	}
	return s, nil
}

func (s *stubExternal) unexpected(verb string) error {
	s.t.Errorf("unexpected call to %s", verb)
	return errNotStubbed
}

func (s *stubExternal) Observe(context.Context) (observation, error) {
	s.calls = append(s.calls, "Observe")
	if s.observe == nil {
		return observation{}, s.unexpected("Observe")
	}
	return s.observe()
}

func (s *stubExternal) TakeTurn(context.Context) error {
	s.calls = append(s.calls, "TakeTurn")
	if s.takeTurn == nil {
		return s.unexpected("TakeTurn")
	}
	return s.takeTurn()
}

// Create is recorded as "Create (recorded)" when the create record, and the
// finalizer that lets it be deleted, are on the apiserver at the time of the
// send, as the create record promises.
func (s *stubExternal) Create(ctx context.Context, recordedAt time.Time) (spectrum.App, error) {
	stored := &v1alpha1.SpectrumApp{}
	call := "Create (not recorded)"
	if err := s.store.Get(ctx, branchKey, stored); err != nil {
		s.t.Errorf("reading the SpectrumApp at Create: %v", err)
	} else if p := stored.UnsettledCreate(); p != nil && p.Time.Equal(recordedAt) && slices.Contains(stored.Finalizers, v1alpha1.Finalizer) {
		call = "Create (recorded)"
	}
	s.calls = append(s.calls, call)
	if s.create == nil {
		return spectrum.App{}, s.unexpected("Create")
	}
	return s.create()
}

func (s *stubExternal) Update(_ context.Context, observed spectrum.App) (spectrum.App, error) {
	s.calls = append(s.calls, "Update "+observed.ID)
	if s.update == nil {
		return spectrum.App{}, s.unexpected("Update")
	}
	return s.update(observed)
}

func (s *stubExternal) Delete(context.Context) (deletion, error) {
	s.calls = append(s.calls, "Delete")
	if s.delete == nil {
		return deletion{}, s.unexpected("Delete")
	}
	return s.delete()
}

// Drifted belongs to the drift check; a reconcile never asks it.
func (s *stubExternal) Drifted(context.Context, time.Time) (bool, error) {
	s.calls = append(s.calls, "Drifted")
	return false, s.unexpected("Drifted")
}

// Answers of the stub.

func answers[T any](v T, err error) func() (T, error) { return func() (T, error) { return v, err } }

func notFound() func() (observation, error) { return answers(observation{}, nil) }

func found(adopted bool, differences ...string) func() (observation, error) {
	return answers(observation{exists: true, app: spectrum.App{ID: branchID}, adopted: adopted, differences: differences}, nil)
}

func observeFails(err error) func() (observation, error) { return answers(observation{}, err) }

func turnTaken() error { return nil }

func cloudflareApp1() (spectrum.App, error) { return spectrum.App{ID: branchID}, nil }

func updateAnswers(observed spectrum.App) (spectrum.App, error) { return observed, nil }

// Cloudflare's answers, one per failure class.
var (
	// unavailable is retried with the workqueue's backoff.
	unavailable = &spectrum.APIError{HTTPStatus: 503, Method: "GET", Path: "/zones/z/spectrum/apps"}
	// rateLimited is retried after the wait Cloudflare asked for.
	rateLimited = &spectrum.APIError{HTTPStatus: 429, RetryAfter: 30 * time.Second, Errors: []spectrum.ErrorDetail{{Code: 971, Message: "Please wait"}}}
	// argoNotEnabled needs a person: an entitlement.
	argoNotEnabled = &spectrum.APIError{HTTPStatus: 403, Errors: []spectrum.ErrorDetail{{Code: 11026, Message: "Argo Smart Routing is not enabled"}}}
	// badOrigin is a spec Cloudflare refuses: admission missed it.
	badOrigin = &spectrum.APIError{HTTPStatus: 400, Errors: []spectrum.ErrorDetail{{Code: rules.CodeOriginAddress, Message: "Invalid origin address"}}}
	// noAnswer got no answer: the create may have been applied.
	noAnswer = &spectrum.RequestError{Method: "POST", Path: "/zones/z/spectrum/apps", Err: context.DeadlineExceeded}
	// queued waits for its turn in the token's line, as TakeTurn says it.
	queued = &budget.QueuedError{RetryAfter: 3 * time.Second}
	// queuedNotSent is a request that waits for its turn, as the client
	// says it (spectrum.APIClient.do): not sent.
	queuedNotSent = &spectrum.RequestError{Method: "POST", Path: "/zones/z/spectrum/apps", Err: fmt.Errorf("%w: %w", spectrum.ErrNotSent, queued)}
)

// branchApp is a valid SpectrumApp, as the apiserver would hold it (the
// deletionPolicy defaulted), that the reconciler has not seen yet.
func branchApp() *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: branchKey.Namespace, Name: branchKey.Name, UID: "uid-ssh", Generation: 1},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID: branchZone, Protocol: "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
			OriginDirect:   []string{"tcp://192.0.2.10:22"},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete,
		},
	}
}

// Changes to branchApp.

func withPolicy(policy string) func(*v1alpha1.SpectrumApp) {
	return func(app *v1alpha1.SpectrumApp) {
		app.Annotations = map[string]string{v1alpha1.ReconcilePolicyAnnotation: policy}
	}
}

// syncedAt: Cloudflare accepted the spec at generation synced, and the
// application is recorded.
func syncedAt(generation, synced int64) func(*v1alpha1.SpectrumApp) {
	return func(app *v1alpha1.SpectrumApp) {
		app.Generation = generation
		app.Status.ApplicationID = branchID
		app.Status.SyncedGeneration = synced
	}
}

// pendingCreate: a create was recorded and got no answer.
func pendingCreate(app *v1alpha1.SpectrumApp) {
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.CreatePendingAnnotation] = time.Now().Add(-5 * time.Second).UTC().Format(time.RFC3339)
	app.Finalizers = []string{v1alpha1.Finalizer}
}

// pendingCreateInStatus: the same, as earlier versions recorded it.
func pendingCreateInStatus(app *v1alpha1.SpectrumApp) {
	app.Status.PendingCreate = &metav1.Time{Time: time.Now().Add(-5 * time.Second).Truncate(time.Second)}
	app.Finalizers = []string{v1alpha1.Finalizer}
}

// settledCreate: the record of a create whose answer was recorded.
func settledCreate(app *v1alpha1.SpectrumApp) {
	pendingCreate(app)
	app.SettleCreate()
}

// deleting: the object is being deleted, with the finalizer on.
func deleting(app *v1alpha1.SpectrumApp) {
	now := metav1.Now()
	app.DeletionTimestamp = &now
	app.Finalizers = []string{v1alpha1.Finalizer}
}

func orphaned(app *v1alpha1.SpectrumApp) { app.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan }

// readyFalse: Ready was already False with reason, as an earlier reconcile
// left it.
func readyFalse(reason string) func(*v1alpha1.SpectrumApp) {
	return func(app *v1alpha1.SpectrumApp) {
		app.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: reason, Message: "told before", LastTransitionTime: metav1.Now()}}
	}
}

// branch is one reconcile: the app as it is, what Cloudflare answers, and
// what must follow.
type branch struct {
	name string
	app  []func(*v1alpha1.SpectrumApp)
	stub stubExternal
	// changedMeanwhile changes the stored SpectrumApp when the stub takes
	// the create's turn, as another writer would: the reconcile's read is
	// then stale.
	changedMeanwhile bool
	want             want
}

type want struct {
	// conditions are Ready, Reconciling and Stalled as "Type=Status/Reason",
	// in that order, the ones absent left out; "" when there are none.
	conditions string
	result     ctrl.Result
	err        error
	// events are "Type Reason".
	events []string
	calls  []string
	// released: the finalizer is gone, and with it the object.
	released bool
	// What status records; checked unless released.
	applicationID string
	pendingCreate bool
	adopted       bool
	differences   []string
	// corrected are the fields counted as drift corrected.
	corrected []string
}

func TestReconcileBranchesSync(t *testing.T) {
	runBranches(t, []branch{
		{
			name: "create answered: the record is written before the send and cleared by the answer",
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: cloudflareApp1},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Created"},
				calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}, applicationID: branchID},
		},
		{
			name: "create refused: the answer clears the record, and the refusal stalls",
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: answers(spectrum.App{}, error(argoNotEnabled))},
			want: want{conditions: "Ready=False/ArgoNotEnabled Stalled=True/ArgoNotEnabled", events: []string{"Warning ArgoNotEnabled"},
				calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}},
		},
		{
			name: "create without an answer: the record is kept, and the create retried with backoff",
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: answers(spectrum.App{}, error(noAnswer))},
			want: want{conditions: "Ready=False/NetworkError Reconciling=True/NetworkError", err: errRetry{v1alpha1.ReasonNetworkError},
				events: []string{"Warning NetworkError"}, calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}, pendingCreate: true},
		},
		{
			name: "create refused as an invalid spec: stalled, not retried",
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: answers(spectrum.App{}, error(badOrigin))},
			want: want{conditions: "Ready=False/InvalidOriginAddress Stalled=True/InvalidOriginAddress", events: []string{"Warning InvalidOriginAddress"},
				calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}},
		},
		{
			name: "an unanswered create may still land: no second create, looked at again once it would have",
			app:  []func(*v1alpha1.SpectrumApp){pendingCreate},
			stub: stubExternal{observe: answers(observation{unconfirmed: 7 * time.Second}, nil)},
			want: want{conditions: "Ready=False/CreateUnconfirmed Reconciling=True/CreateUnconfirmed", result: ctrl.Result{RequeueAfter: 8 * time.Second},
				events: []string{"Normal CreateUnconfirmed"}, calls: []string{"connect", "Observe"}, pendingCreate: true},
		},
		{
			name: "an unanswered create recorded in status by an earlier version is honoured too",
			app:  []func(*v1alpha1.SpectrumApp){pendingCreateInStatus},
			stub: stubExternal{observe: answers(observation{unconfirmed: 7 * time.Second}, nil)},
			want: want{conditions: "Ready=False/CreateUnconfirmed Reconciling=True/CreateUnconfirmed", result: ctrl.Result{RequeueAfter: 8 * time.Second},
				events: []string{"Normal CreateUnconfirmed"}, calls: []string{"connect", "Observe"}, pendingCreate: true},
		},
		{
			name: "a settled record does not hold a create back: recorded again before the send",
			app:  []func(*v1alpha1.SpectrumApp){settledCreate},
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: cloudflareApp1},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Created"},
				calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}, applicationID: branchID},
		},
		{
			name:             "create decided on a stale read: nothing sent, read again, nothing reported",
			stub:             stubExternal{observe: notFound(), takeTurn: turnTaken},
			changedMeanwhile: true,
			want:             want{result: ctrl.Result{RequeueAfter: readAgainAfter}, calls: []string{"connect", "Observe", "TakeTurn"}},
		},
		{
			name: "create waits for its turn: no record, nothing reported, looked at again when the turn is due",
			stub: stubExternal{observe: notFound(), takeTurn: func() error { return queued }},
			want: want{result: ctrl.Result{RequeueAfter: queued.RetryAfter + turnWakeSlack}, calls: []string{"connect", "Observe", "TakeTurn"}},
		},
		{
			name: "create waits for its turn after its record: the record is cleared, nothing else reported",
			stub: stubExternal{observe: notFound(), takeTurn: turnTaken, create: answers(spectrum.App{}, error(queuedNotSent))},
			want: want{result: ctrl.Result{RequeueAfter: queued.RetryAfter + turnWakeSlack}, calls: []string{"connect", "Observe", "TakeTurn", "Create (recorded)"}},
		},
		{
			name: "update of a drift: the spec Cloudflare accepted was changed outside Kubernetes",
			app:  []func(*v1alpha1.SpectrumApp){syncedAt(2, 2)},
			stub: stubExternal{observe: found(false, "tls"), update: updateAnswers},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Updated"},
				calls: []string{"connect", "Observe", "Update " + branchID}, applicationID: branchID, corrected: []string{"tls"}},
		},
		{
			name: "update to a new spec: not a drift",
			app:  []func(*v1alpha1.SpectrumApp){syncedAt(3, 2)},
			stub: stubExternal{observe: found(false, "tls"), update: updateAnswers},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Updated"},
				calls: []string{"connect", "Observe", "Update " + branchID}, applicationID: branchID},
		},
		{
			name: "update refused: stalled, not retried, the application left as it is",
			app:  []func(*v1alpha1.SpectrumApp){syncedAt(3, 2)},
			stub: stubExternal{observe: found(false, "argo_smart_routing"), update: func(spectrum.App) (spectrum.App, error) { return spectrum.App{}, argoNotEnabled }},
			want: want{conditions: "Ready=False/ArgoNotEnabled Stalled=True/ArgoNotEnabled", events: []string{"Warning ArgoNotEnabled"},
				calls: []string{"connect", "Observe", "Update " + branchID}, applicationID: branchID},
		},
		{
			name: "already in sync: nothing written, nothing told",
			app:  []func(*v1alpha1.SpectrumApp){syncedAt(2, 2)},
			stub: stubExternal{observe: found(false)},
			want: want{conditions: "Ready=True/Synced", calls: []string{"connect", "Observe"}, applicationID: branchID},
		},
		{
			name: "adopt and bring to the spec: the differences count as corrected",
			stub: stubExternal{observe: found(true, "tls", "proxy_protocol"), update: updateAnswers},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Adopted"},
				calls: []string{"connect", "Observe", "Update " + branchID}, applicationID: branchID, adopted: true, corrected: []string{"tls", "proxy_protocol"}},
		},
		{
			name: "adopt an application that already matches: no write",
			stub: stubExternal{observe: found(true)},
			want: want{conditions: "Ready=True/Synced", events: []string{"Normal Adopted"},
				calls: []string{"connect", "Observe"}, applicationID: branchID, adopted: true},
		},
		{
			name: "adoption not asked for: stalled, nothing written",
			stub: stubExternal{observe: observeFails(&ExistsError{ApplicationID: branchID, Hostname: "ssh.example.com", Protocol: "tcp/22"})},
			want: want{conditions: "Ready=False/ApplicationExists Stalled=True/ApplicationExists", events: []string{"Warning ApplicationExists"},
				calls: []string{"connect", "Observe"}},
		},
		{
			name: "observe, matches",
			app:  []func(*v1alpha1.SpectrumApp){withPolicy(v1alpha1.ReconcilePolicyObserve)},
			stub: stubExternal{observe: found(false)},
			want: want{conditions: "Ready=True/Observed", calls: []string{"connect", "Observe"}, applicationID: branchID},
		},
		{
			name: "observe, differs: told, stalled, not written",
			app:  []func(*v1alpha1.SpectrumApp){withPolicy(v1alpha1.ReconcilePolicyObserve)},
			stub: stubExternal{observe: found(false, "tls")},
			want: want{conditions: "Ready=False/OutOfSync Stalled=True/OutOfSync", events: []string{"Warning OutOfSync"},
				calls: []string{"connect", "Observe"}, applicationID: branchID, differences: []string{"tls"}},
		},
		{
			name: "observe, not found: told, stalled, not created",
			app:  []func(*v1alpha1.SpectrumApp){withPolicy(v1alpha1.ReconcilePolicyObserve)},
			stub: stubExternal{observe: notFound()},
			want: want{conditions: "Ready=False/NotFound Stalled=True/NotFound", events: []string{"Warning NotFound"},
				calls: []string{"connect", "Observe"}},
		},
		{
			name: "skip: no call at all",
			app:  []func(*v1alpha1.SpectrumApp){withPolicy(v1alpha1.ReconcilePolicySkip)},
			want: want{conditions: "Ready=Unknown/ReconcileSkipped"},
		},
		{
			name: "unknown policy: stalled, no call at all",
			app:  []func(*v1alpha1.SpectrumApp){withPolicy("mirror")},
			want: want{conditions: "Ready=False/InvalidReconcilePolicy Stalled=True/InvalidReconcilePolicy", events: []string{"Warning InvalidReconcilePolicy"}},
		},
		{
			name: "invalid spec caught by checkSpec: stalled, no call at all",
			app: []func(*v1alpha1.SpectrumApp){func(app *v1alpha1.SpectrumApp) {
				app.Spec.OriginDirect = []string{"tcp://2001:db8::1:22"} // an IPv6 origin needs brackets
			}},
			want: want{conditions: "Ready=False/InvalidSpec Stalled=True/InvalidSpec", events: []string{"Warning InvalidSpec"}},
		},
		{
			name: "Retryable: Reconciling, retried with backoff",
			stub: stubExternal{observe: observeFails(unavailable)},
			want: want{conditions: "Ready=False/CloudflareUnavailable Reconciling=True/CloudflareUnavailable", err: errRetry{v1alpha1.ReasonCloudflareUnavailable},
				events: []string{"Warning CloudflareUnavailable"}, calls: []string{"connect", "Observe"}},
		},
		{
			name: "Retryable with Retry-After: Reconciling, retried after the wait asked for",
			stub: stubExternal{observe: observeFails(rateLimited)},
			want: want{conditions: "Ready=False/RateLimited Reconciling=True/RateLimited", result: ctrl.Result{RequeueAfter: rateLimited.RetryAfter},
				events: []string{"Warning RateLimited"}, calls: []string{"connect", "Observe"}},
		},
		{
			name: "a failure told before is not told again",
			app:  []func(*v1alpha1.SpectrumApp){readyFalse(v1alpha1.ReasonCloudflareUnavailable)},
			stub: stubExternal{observe: observeFails(unavailable)},
			want: want{conditions: "Ready=False/CloudflareUnavailable Reconciling=True/CloudflareUnavailable", err: errRetry{v1alpha1.ReasonCloudflareUnavailable},
				calls: []string{"connect", "Observe"}},
		},
		{
			name: "NeedsHuman while connecting: Stalled, not retried",
			stub: stubExternal{connectErr: &CredentialsError{Reason: v1alpha1.ReasonCredentialsSecretNotFound, Detail: "Secret team-a/cloudflare not found"}},
			want: want{conditions: "Ready=False/CredentialsSecretNotFound Stalled=True/CredentialsSecretNotFound",
				events: []string{"Warning CredentialsSecretNotFound"}, calls: []string{"connect"}},
		},
		{
			name: "observe waits for its turn: nothing reported",
			stub: stubExternal{observe: observeFails(queuedNotSent)},
			want: want{result: ctrl.Result{RequeueAfter: queued.RetryAfter + turnWakeSlack}, calls: []string{"connect", "Observe"}},
		},
	})
}

func TestReconcileBranchesDelete(t *testing.T) {
	runBranches(t, []branch{
		{
			name: "deleted",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1)},
			stub: stubExternal{delete: answers(deletion{deletedIDs: []string{branchID}}, nil)},
			want: want{released: true, events: []string{"Normal Deleted"}, calls: []string{"connect", "Delete"}},
		},
		{
			name: "orphaned by deletionPolicy: no call at all",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1), orphaned},
			want: want{released: true, events: []string{"Normal Orphaned"}},
		},
		{
			name: "orphaned by reconcile-policy observe: no call at all",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1), withPolicy(v1alpha1.ReconcilePolicyObserve)},
			want: want{released: true, events: []string{"Normal Orphaned"}},
		},
		{
			name: "orphaned by reconcile-policy skip: no call at all",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1), withPolicy(v1alpha1.ReconcilePolicySkip)},
			want: want{released: true, events: []string{"Normal Orphaned"}},
		},
		{
			name: "nothing created nor adopted: nothing to delete, no call at all",
			app:  []func(*v1alpha1.SpectrumApp){deleting},
			want: want{released: true, events: []string{"Normal Deleted"}},
		},
		{
			name: "a pending create that never landed: released",
			app:  []func(*v1alpha1.SpectrumApp){deleting, pendingCreate},
			stub: stubExternal{delete: answers(deletion{}, nil)},
			want: want{released: true, events: []string{"Normal Deleted"}, calls: []string{"connect", "Delete"}},
		},
		{
			name: "a pending create that may still land: kept until it would have",
			app:  []func(*v1alpha1.SpectrumApp){deleting, pendingCreate},
			stub: stubExternal{delete: answers(deletion{unconfirmed: 4 * time.Second}, nil)},
			want: want{conditions: "Ready=False/CreateUnconfirmed Reconciling=True/CreateUnconfirmed", result: ctrl.Result{RequeueAfter: 5 * time.Second},
				events: []string{"Normal CreateUnconfirmed"}, calls: []string{"connect", "Delete"}, pendingCreate: true},
		},
		{
			name: "a pending create recorded in status by an earlier version: looked for too",
			app:  []func(*v1alpha1.SpectrumApp){deleting, pendingCreateInStatus},
			stub: stubExternal{delete: answers(deletion{unconfirmed: 4 * time.Second}, nil)},
			want: want{conditions: "Ready=False/CreateUnconfirmed Reconciling=True/CreateUnconfirmed", result: ctrl.Result{RequeueAfter: 5 * time.Second},
				events: []string{"Normal CreateUnconfirmed"}, calls: []string{"connect", "Delete"}, pendingCreate: true},
		},
		{
			name: "a create refused, its record settled: nothing to delete, no call at all",
			app:  []func(*v1alpha1.SpectrumApp){deleting, settledCreate},
			want: want{released: true, events: []string{"Normal Deleted"}},
		},
		{
			name: "Retryable: kept, retried with backoff",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1)},
			stub: stubExternal{delete: answers(deletion{}, error(unavailable))},
			want: want{conditions: "Ready=False/CloudflareUnavailable Reconciling=True/CloudflareUnavailable", err: errRetry{v1alpha1.ReasonCloudflareUnavailable},
				events: []string{"Warning CloudflareUnavailable"}, calls: []string{"connect", "Delete"}, applicationID: branchID},
		},
		{
			name: "NeedsHuman: kept, Stalled, not retried",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1)},
			stub: stubExternal{delete: answers(deletion{}, error(&spectrum.APIError{HTTPStatus: 403, Errors: []spectrum.ErrorDetail{{Code: 10000, Message: "Authentication error"}}}))},
			want: want{conditions: "Ready=False/AuthenticationFailed Stalled=True/AuthenticationFailed",
				events: []string{"Warning AuthenticationFailed"}, calls: []string{"connect", "Delete"}, applicationID: branchID},
		},
		{
			name: "waits for its turn: kept, nothing reported",
			app:  []func(*v1alpha1.SpectrumApp){deleting, syncedAt(1, 1)},
			stub: stubExternal{delete: answers(deletion{}, error(queuedNotSent))},
			want: want{result: ctrl.Result{RequeueAfter: queued.RetryAfter + turnWakeSlack}, calls: []string{"connect", "Delete"}, applicationID: branchID},
		},
	})
}

func runBranches(t *testing.T, branches []branch) {
	for _, tc := range branches {
		t.Run(tc.name, func(t *testing.T) {
			app := branchApp()
			for _, change := range tc.app {
				change(app)
			}
			scheme := runtime.NewScheme()
			if err := v1alpha1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			store := fake.NewClientBuilder().WithScheme(scheme).
				WithObjects(app).WithStatusSubresource(&v1alpha1.SpectrumApp{}).Build()
			stub := tc.stub
			stub.t, stub.store = t, store
			if tc.changedMeanwhile {
				stub.takeTurn = func() error {
					changed := &v1alpha1.SpectrumApp{}
					if err := store.Get(t.Context(), branchKey, changed); err != nil {
						t.Fatal(err)
					}
					changed.Labels = map[string]string{"changed": "meanwhile"}
					if err := store.Update(t.Context(), changed); err != nil {
						t.Fatal(err)
					}
					return nil
				}
			}
			recorder := events.NewFakeRecorder(10)
			metrics := NewAppMetrics()
			r := &SpectrumAppReconciler{Client: store, APIReader: store, Recorder: recorder, Metrics: metrics, stubConnect: stub.connect,
				writer: writerThrough(store)}

			result, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: branchKey})

			if result != tc.want.result || err != tc.want.err {
				t.Errorf("Reconcile = %+v, %v; want %+v, %v", result, err, tc.want.result, tc.want.err)
			}
			if !slices.Equal(stub.calls, tc.want.calls) {
				t.Errorf("calls at Cloudflare %q, want %q", stub.calls, tc.want.calls)
			}
			if got := recorded(recorder); !slices.Equal(got, tc.want.events) {
				t.Errorf("events %q, want %q", got, tc.want.events)
			}
			if got := correctedFields(metrics, tc.want.corrected); got != "" {
				t.Error(got)
			}
			after := &v1alpha1.SpectrumApp{}
			err = store.Get(t.Context(), branchKey, after)
			if tc.want.released {
				if !apierrors.IsNotFound(err) {
					t.Errorf("the object is still there (%v), finalizers %q; want it released", err, after.Finalizers)
				}
				return
			}
			if err != nil {
				t.Fatalf("the object is gone (%v); want it kept", err)
			}
			// The finalizer is held while something at Cloudflare is the
			// app's to delete (an application recorded, or a create that
			// may have made one), and not put on an app that never got as
			// far as a create or an ID: that one can be deleted at once.
			manage := after.Policy() == v1alpha1.ReconcilePolicyManage
			mustHold := manage && (after.Status.ApplicationID != "" || after.UnsettledCreate() != nil)
			mustNot := !manage || (after.Status.ApplicationID == "" && after.CreateRecord() == nil && after.UnsettledCreate() == nil)
			if held := slices.Contains(after.Finalizers, v1alpha1.Finalizer); (mustHold && !held) || (mustNot && held) {
				t.Errorf("finalizers %q with application %q, create record %v (unsettled %v), policy %s",
					after.Finalizers, after.Status.ApplicationID, after.CreateRecord(), after.UnsettledCreate(), after.Policy())
			}
			if got := conditionsOf(after); got != tc.want.conditions {
				t.Errorf("conditions %q, want %q", got, tc.want.conditions)
			}
			s := after.Status
			if s.ApplicationID != tc.want.applicationID || (after.UnsettledCreate() != nil) != tc.want.pendingCreate ||
				s.Adopted != tc.want.adopted || !slices.Equal(s.Differences, tc.want.differences) {
				t.Errorf("status: applicationID %q, unsettled create %v, adopted %v, differences %q; want %q, %v, %v, %q",
					s.ApplicationID, after.UnsettledCreate(), s.Adopted, s.Differences,
					tc.want.applicationID, tc.want.pendingCreate, tc.want.adopted, tc.want.differences)
			}
		})
	}
}

// conditionsOf reads Ready, Reconciling and Stalled as "Type=Status/Reason".
func conditionsOf(app *v1alpha1.SpectrumApp) string {
	var parts []string
	for _, conditionType := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
		if c := meta.FindStatusCondition(app.Status.Conditions, conditionType); c != nil {
			parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
		}
	}
	return strings.Join(parts, " ")
}

// recorded drains the recorder: each event as "Type Reason".
func recorded(recorder *events.FakeRecorder) []string {
	var told []string
	for {
		select {
		case e := <-recorder.Events:
			fields := strings.Fields(e)
			told = append(told, strings.Join(fields[:min(2, len(fields))], " "))
		default:
			return told
		}
	}
}

// correctedFields tells how the drift corrections counted differ from want,
// one count per field; "" when they do not.
func correctedFields(m *AppMetrics, want []string) string {
	if n := testutil.CollectAndCount(m.corrections); n != len(want) {
		return fmt.Sprintf("drift corrections counted for %d fields, want %q", n, want)
	}
	for _, field := range want {
		if n := testutil.ToFloat64(m.corrections.WithLabelValues(field)); n != 1 {
			return fmt.Sprintf("drift corrections of %s counted %v times, want once", field, n)
		}
	}
	return ""
}

// writerThrough writes SpectrumApps' metadata and status patches through c,
// as the manager's metadata client writes them to the apiserver.
func writerThrough(c client.Client) metadataWriter {
	return metadataWriter{send: func(ctx context.Context, resource schema.GroupVersionResource, namespace, name string, patch []byte, subresources ...string) (*metav1.PartialObjectMetadata, error) {
		if resource != spectrumAppsResource {
			return nil, fmt.Errorf("the branch tests write only SpectrumApps, not %s", resource)
		}
		app := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		var err error
		switch {
		case len(subresources) == 0:
			err = c.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch))
		case slices.Equal(subresources, []string{"status"}):
			err = c.Status().Patch(ctx, app, client.RawPatch(types.MergePatchType, patch))
		default:
			err = fmt.Errorf("no subresource %v", subresources)
		}
		if err != nil {
			return nil, err
		}
		return &metav1.PartialObjectMetadata{ObjectMeta: app.ObjectMeta}, nil
	}}
}
