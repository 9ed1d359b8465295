// Package events writes Kubernetes Events (events.k8s.io/v1) about
// SpectrumApps.
//
// client-go's event broadcaster keeps a copy of every Event it sent in the
// last six to twelve minutes, to fold repeats into a series. The operator
// reports each transition once (Created, Updated, a new failure reason), and
// its notes carry IDs and Ray IDs, so repeats are rare and the copies are
// pure cost: 11 MiB after 10,000 apps were created (docs/benchmarks.md).
// This recorder sends each Event and forgets it.
package events

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// queueLength bounds the Events waiting to be sent, as client-go's
	// broadcaster does; past it new Events are dropped, never memory spent.
	queueLength = 1000
	workers     = 4
	maxTries    = 5
	// maxNoteLength is the apiserver's limit on an Event's note.
	maxNoteLength = 1024
	// drainTimeout is how long Events queued at shutdown still get to go out.
	drainTimeout = 2 * time.Second
)

// Recorder sends Events through a client. It implements controller-runtime's
// recorder.EventRecorder, and must be added to the manager (it is a
// Runnable) for Events to be sent.
type Recorder struct {
	writer     client.Writer
	scheme     *runtime.Scheme
	controller string
	instance   string
	log        logr.Logger
	queue      chan *eventsv1.Event
	dropped    atomic.Int64
	retryDelay time.Duration
}

// New returns a Recorder that reports as controller, from this host.
func New(writer client.Writer, scheme *runtime.Scheme, controller string, log logr.Logger) *Recorder {
	host, _ := os.Hostname()
	instance := controller
	if host != "" {
		instance = controller + "-" + host
	}
	return &Recorder{
		writer:     writer,
		scheme:     scheme,
		controller: controller,
		instance:   truncate(instance, 128),
		log:        log,
		queue:      make(chan *eventsv1.Event, queueLength),
		retryDelay: 500 * time.Millisecond,
	}
}

// Eventf queues an Event about regarding; it never blocks.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

// AnnotatedEventf is Eventf with annotations on the Event.
func (r *Recorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string, args ...any) {
	if len(args) > 0 {
		note = fmt.Sprintf(note, args...)
	}
	event, err := r.event(regarding, related, annotations, eventtype, reason, action, note)
	if err != nil {
		r.log.Error(err, "Not recording an event", "reason", reason)
		return
	}
	select {
	case r.queue <- event:
	default:
		if r.dropped.Add(1)%100 == 1 {
			r.log.Info("Event queue full, dropping events", "dropped", r.dropped.Load(), "reason", reason)
		}
	}
}

// Dropped is how many Events were dropped because the queue was full.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

// DroppedCounter exports Dropped as spectrum_events_dropped_total; register
// it with the metrics registry.
func (r *Recorder) DroppedCounter() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "spectrum_events_dropped_total",
		Help: "Kubernetes Events not recorded because more were waiting to be sent than the queue holds.",
	}, func() float64 { return float64(r.Dropped()) })
}

func (r *Recorder) event(regarding, related runtime.Object, annotations map[string]string, eventtype, reason, action, note string) (*eventsv1.Event, error) {
	if eventtype != corev1.EventTypeNormal && eventtype != corev1.EventTypeWarning {
		return nil, fmt.Errorf("event type %q is neither Normal nor Warning", eventtype)
	}
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		return nil, err
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(r.scheme, related); err != nil {
			return nil, err
		}
	}
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	now := time.Now()
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// client-go's naming: the object's name and a unique suffix.
			Name:        fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()),
			Namespace:   namespace,
			Annotations: annotations,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                truncate(note, maxNoteLength),
		Type:                eventtype,
	}, nil
}

// Start sends queued Events until ctx ends, then what is still queued,
// for a moment.
func (r *Recorder) Start(ctx context.Context) error {
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			r.send(ctx)
		}()
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for range workers {
		<-done
	}
	for {
		select {
		case event := <-r.queue:
			r.write(drain, event)
		default:
			return nil
		}
	}
}

// NeedLeaderElection is false: a standby manager's webhook may report too.
func (r *Recorder) NeedLeaderElection() bool { return false }

func (r *Recorder) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case event := <-r.queue:
			r.write(ctx, event)
		}
	}
}

// write creates the Event, retrying what may succeed later.
func (r *Recorder) write(ctx context.Context, event *eventsv1.Event) {
	for try := 1; ; try++ {
		err := r.writer.Create(ctx, event)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		// A namespace being deleted, an invalid Event: retrying cannot help.
		permanent := apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err)
		if permanent || try == maxTries || ctx.Err() != nil {
			r.log.V(1).Info("Could not write event", "reason", event.Reason, "regarding", event.Regarding.Name, "error", err.Error())
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(try) * r.retryDelay):
		}
	}
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
