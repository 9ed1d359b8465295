package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// fakeWriter records creates and answers them from a script.
type fakeWriter struct {
	client.Writer
	mu      sync.Mutex
	created []*eventsv1.Event
	tries   int
	answer  func(try int) error
}

func (w *fakeWriter) Create(_ context.Context, obj client.Object, _ ...client.CreateOption) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tries++
	if w.answer != nil {
		if err := w.answer(w.tries); err != nil {
			return err
		}
	}
	w.created = append(w.created, obj.(*eventsv1.Event).DeepCopy())
	return nil
}

func (w *fakeWriter) snapshot() ([]*eventsv1.Event, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*eventsv1.Event(nil), w.created...), w.tries
}

func pod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", UID: "uid-1", ResourceVersion: "7"}}
}

func newRecorder(w client.Writer) *Recorder {
	r := New(w, clientgoscheme.Scheme, "spectrum-operator", logr.Discard())
	r.retryDelay = time.Millisecond
	return r
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAnEventDescribesWhatHappenedToWhat(t *testing.T) {
	w := &fakeWriter{}
	r := newRecorder(w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Start(ctx) }()

	r.Eventf(pod(), nil, corev1.EventTypeWarning, "ZoneNotFound", "Reconcile", "Zone %s is not 100%% there", "z1")
	r.Eventf(pod(), nil, corev1.EventTypeNormal, "Created", "Created", "a note with a literal 100% and no arguments")
	waitFor(t, func() bool { got, _ := w.snapshot(); return len(got) == 2 })

	got, _ := w.snapshot()
	byReason := map[string]*eventsv1.Event{}
	for _, ev := range got {
		byReason[ev.Reason] = ev
	}
	e := byReason["ZoneNotFound"]
	if e == nil {
		t.Fatalf("no ZoneNotFound event in %v", got)
	}
	if e.Namespace != "team-a" || !strings.HasPrefix(e.Name, "web.") {
		t.Errorf("event %s/%s, want team-a/web.<suffix>", e.Namespace, e.Name)
	}
	if e.Regarding.Kind != "Pod" || e.Regarding.Name != "web" || e.Regarding.UID != "uid-1" || e.Regarding.ResourceVersion != "7" {
		t.Errorf("regarding %+v", e.Regarding)
	}
	if e.Type != corev1.EventTypeWarning || e.Reason != "ZoneNotFound" || e.Action != "Reconcile" || e.Note != "Zone z1 is not 100% there" {
		t.Errorf("type %q reason %q action %q note %q", e.Type, e.Reason, e.Action, e.Note)
	}
	if e.ReportingController != "spectrum-operator" || !strings.HasPrefix(e.ReportingInstance, "spectrum-operator") || e.EventTime.IsZero() {
		t.Errorf("reporting %q %q at %v", e.ReportingController, e.ReportingInstance, e.EventTime)
	}
	if created := byReason["Created"]; created == nil || created.Note != "a note with a literal 100% and no arguments" {
		t.Errorf("a note without arguments was formatted: %+v", created)
	}
}

func TestLongNotesAreCutOnACharacterBoundary(t *testing.T) {
	note := strings.Repeat("é", maxNoteLength)
	cut := truncate(note, maxNoteLength)
	if len(cut) > maxNoteLength || !utf8.ValidString(cut) || !strings.HasSuffix(cut, "...") {
		t.Fatalf("%d bytes, valid UTF-8 %v: ...%q", len(cut), utf8.ValidString(cut), cut[len(cut)-8:])
	}
	if truncate("short", maxNoteLength) != "short" {
		t.Fatal("a short note changed")
	}
}

func TestWhatCannotBeRecordedIsNotQueued(t *testing.T) {
	r := newRecorder(&fakeWriter{})
	r.Eventf(pod(), nil, "Info", "Created", "Created", "not a valid event type")
	r.Eventf(&unknownKind{}, nil, corev1.EventTypeNormal, "Created", "Created", "no kind for this object")
	if n := len(r.queue); n != 0 {
		t.Fatalf("%d events queued, want 0", n)
	}
}

// unknownKind is an object the scheme does not know.
type unknownKind struct{ corev1.Pod }

func (u *unknownKind) DeepCopyObject() runtime.Object { return &unknownKind{*u.Pod.DeepCopy()} }
func (u *unknownKind) GetObjectKind() schema.ObjectKind {
	return schema.EmptyObjectKind
}

func TestAFullQueueDropsInsteadOfBlocking(t *testing.T) {
	r := newRecorder(&fakeWriter{})
	// Not started: nothing drains the queue.
	done := make(chan struct{})
	go func() {
		for range queueLength + 25 {
			r.Eventf(pod(), nil, corev1.EventTypeNormal, "Created", "Created", "note")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Eventf blocked on a full queue")
	}
	if r.Dropped() != 25 || len(r.queue) != queueLength {
		t.Fatalf("dropped %d with %d queued, want 25 and %d", r.Dropped(), len(r.queue), queueLength)
	}
}

func TestTemporaryFailuresAreRetriedPermanentOnesNot(t *testing.T) {
	gr := schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
	for _, tc := range []struct {
		name      string
		answer    func(try int) error
		wantTries int
		wantSent  int
	}{
		{"succeeds at once", nil, 1, 1},
		{"apiserver busy twice", func(try int) error {
			if try <= 2 {
				return apierrors.NewTooManyRequests("slow down", 1)
			}
			return nil
		}, 3, 1},
		{"network down for good", func(int) error { return errors.New("connection refused") }, maxTries, 0},
		{"namespace being deleted", func(int) error {
			return apierrors.NewForbidden(gr, "web.1", errors.New("namespace team-a is being terminated"))
		}, 1, 0},
		{"invalid event", func(int) error {
			return apierrors.NewInvalid(schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}, "web.1", nil)
		}, 1, 0},
		{"already written by an earlier try", func(int) error { return apierrors.NewAlreadyExists(gr, "web.1") }, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWriter{answer: tc.answer}
			r := newRecorder(w)
			r.write(context.Background(), mustEvent(t, r))
			got, tries := w.snapshot()
			if tries != tc.wantTries || len(got) != tc.wantSent {
				t.Fatalf("%d tries, %d sent; want %d and %d", tries, len(got), tc.wantTries, tc.wantSent)
			}
		})
	}
}

func mustEvent(t *testing.T, r *Recorder) *eventsv1.Event {
	t.Helper()
	e, err := r.event(pod(), nil, nil, corev1.EventTypeNormal, "Created", "Created", "note")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestQueuedEventsGoOutAtShutdown(t *testing.T) {
	w := &fakeWriter{}
	r := newRecorder(w)
	for range 10 {
		r.Eventf(pod(), nil, corev1.EventTypeNormal, "Deleted", "Delete", "note")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.snapshot(); len(got) != 10 {
		t.Fatalf("%d of 10 queued events sent at shutdown", len(got))
	}
}
