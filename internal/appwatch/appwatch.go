// Package appwatch reads the apiserver's stream of SpectrumApp watch
// events in one pass. client-go walks each event's JSON five times: its
// framer checks the whole event to find where it ends, the serializer
// reads apiVersion and kind from it (a full encoding/json pass), decodes
// the event envelope (another, copying the object out), reads apiVersion
// and kind again from the object and only then decodes it. Decoding those
// events was 15 % of the manager's CPU to converge 20,000 apps, a third of
// it the two apiVersion/kind passes (docs/benchmarks.md).
//
// Here the framer finds an event's end by counting brackets outside
// strings, the envelope and the object's apiVersion and kind are read by
// one jsonscan walk each, and the object is decoded by the very function
// client-go's serializer uses (sigs.k8s.io/json, case-sensitive). Anything
// but a plain SpectrumApp event (an ERROR event's Status, a key with
// escapes, a field in another case, JSON nested deeper than
// jsonscan.MaxDepth) is handed to client-go's own decoders, so its meaning
// and its errors are theirs. FuzzEventDecoding holds the two paths to the
// same answer, and TestWatchMatchesClientGo to the same events from a real
// apiserver.
package appwatch

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	kjson "sigs.k8s.io/json"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/jsonscan"
)

// Watcher watches SpectrumApps in every namespace, decoding in one pass.
type Watcher struct {
	client     rest.Interface
	paramCodec runtime.ParameterCodec
	selector   labels.Selector
	// fast counts the SpectrumApps decoded in one pass, and handedOn the
	// events and objects left to client-go's decoders.
	fast, handedOn atomic.Int64
}

// New returns a Watcher that talks to the apiserver of cfg through
// httpClient (the manager's, so watches share its connection). scheme
// decodes what the one-pass reader hands on, as controller-runtime's
// cache would. selector, unless nil, is the label selector the cache has
// for SpectrumApps (cache.ByObject's Label).
func New(cfg *rest.Config, httpClient *http.Client, scheme *runtime.Scheme, selector labels.Selector) (*Watcher, error) {
	w := &Watcher{paramCodec: runtime.NewParameterCodec(scheme), selector: selector}
	serialization, err := newNegotiated(scheme, w)
	if err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serialization
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if w.client, err = rest.RESTClientForConfigAndClient(c, httpClient); err != nil {
		return nil, err
	}
	return w, nil
}

// Decoded says how many SpectrumApps were decoded in one pass, and how
// many events or objects were handed to client-go's decoders.
func (w *Watcher) Decoded() (fast, handedOn int64) {
	return w.fast.Load(), w.handedOn.Load()
}

// NewInformer is controller-runtime's cache.Options.NewInformer for a
// cache of every namespace (the manager's, unless --watch-namespaces is
// given) whose SpectrumApps are selected by w's selector: the SpectrumApp
// informer lists as controller-runtime would and watches through w; every
// other informer is controller-runtime's own.
func (w *Watcher) NewInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	if _, ok := obj.(*v1alpha1.SpectrumApp); ok {
		if given, ok := lw.(*toolscache.ListWatch); ok && given.ListWithContextFunc != nil {
			lw = &toolscache.ListWatch{
				ListWithContextFunc:  given.ListWithContextFunc,
				WatchFuncWithContext: w.Watch,
				DisableChunking:      given.DisableChunking,
			}
		}
	}
	return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
}

// Watch starts a watch of SpectrumApps in every namespace, with
// bookmarks, as controller-runtime's cache asks for one.
func (w *Watcher) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	opts.AllowWatchBookmarks = true
	if w.selector != nil {
		opts.LabelSelector = w.selector.String()
	}
	return w.client.Get().Resource("spectrumapps").VersionedParams(&opts, w.paramCodec).Watch(ctx)
}

func newNegotiated(scheme *runtime.Scheme, w *Watcher) (negotiated, error) {
	eventKinds, _, err := scheme.ObjectKinds(&metav1.WatchEvent{})
	if err != nil {
		return negotiated{}, fmt.Errorf("the scheme does not know watch events: %w", err)
	}
	return negotiated{
		standard:  serializer.WithoutConversionCodecFactory{CodecFactory: serializer.NewCodecFactory(scheme)},
		watcher:   w,
		eventKind: eventKinds[0],
	}, nil
}

// negotiated is client-go's JSON serialization, with the watch stream
// read by objectFramer and eventDecoder and its objects by objectDecoder.
type negotiated struct {
	standard  runtime.NegotiatedSerializer
	watcher   *Watcher
	eventKind schema.GroupVersionKind
}

func (n negotiated) SupportedMediaTypes() []runtime.SerializerInfo {
	var infos []runtime.SerializerInfo
	for _, info := range n.standard.SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeJSON && info.StreamSerializer != nil {
			stream := *info.StreamSerializer
			stream.Serializer = eventDecoder{Serializer: stream.Serializer, watcher: n.watcher, kind: n.eventKind}
			stream.Framer = objectFramer{}
			info.StreamSerializer = &stream
		}
		infos = append(infos, info)
	}
	return infos
}

func (n negotiated) EncoderForVersion(encoder runtime.Encoder, gv runtime.GroupVersioner) runtime.Encoder {
	return n.standard.EncoderForVersion(encoder, gv)
}

func (n negotiated) DecoderToVersion(decoder runtime.Decoder, gv runtime.GroupVersioner) runtime.Decoder {
	return objectDecoder{standard: n.standard.DecoderToVersion(decoder, gv), watcher: n.watcher}
}

// eventDecoder reads a watch event's envelope, {"type": …, "object": …}.
type eventDecoder struct {
	runtime.Serializer
	watcher *Watcher
	kind    schema.GroupVersionKind
}

func (d eventDecoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if event, ok := into.(*metav1.WatchEvent); ok && defaults == nil && readEvent(data, event) {
		kind := d.kind
		return event, &kind, nil
	}
	d.watcher.handedOn.Add(1)
	return d.Serializer.Decode(data, defaults, into)
}

// readEvent decodes data into event as client-go's serializer would, and
// reports false, leaving event as it was, for anything but a plain event:
// a key naming apiVersion or kind (client-go's serializer reads those
// first), a key in another case than the field's, a type that is not a
// plain string.
func readEvent(data []byte, event *metav1.WatchEvent) bool {
	var typ string
	var object []byte
	s := jsonscan.Scanner{Data: data}
	s.Space()
	plain := s.Members(func(key string, value []byte) bool {
		switch key {
		case "type":
			text, ok := eventType(value)
			typ = text
			return ok
		case "object":
			if string(value) != "null" {
				// As RawExtension reads it: null keeps what there was.
				object = value
			}
			return true
		}
		return !foldsTo(key, "type", "object", "apiVersion", "kind")
	}) && s.End()
	if !plain {
		return false
	}
	event.Type = typ
	if object != nil {
		// The frame's buffer is reused for the next event.
		event.Object.Raw = append(event.Object.Raw[:0], object...)
	}
	return true
}

// objectDecoder decodes a SpectrumApp in one pass; anything else (an ERROR
// event's Status, a request's answer) is client-go's to decode.
type objectDecoder struct {
	standard runtime.Decoder
	watcher  *Watcher
}

var spectrumAppKind = v1alpha1.GroupVersion.WithKind("SpectrumApp")

func (d objectDecoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into == nil && defaults == nil && isSpectrumApp(data) {
		app := &v1alpha1.SpectrumApp{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, app); err == nil {
			// As client-go's decoder without conversion leaves it.
			app.TypeMeta = metav1.TypeMeta{}
			d.watcher.fast.Add(1)
			kind := spectrumAppKind
			return app, &kind, nil
		}
	}
	d.watcher.handedOn.Add(1)
	return d.standard.Decode(data, defaults, into)
}

// isSpectrumApp reports whether data is one JSON object whose apiVersion
// and kind, read as client-go's serializer reads them, are SpectrumApp's,
// with no key that encoding/json could match to either in another case.
func isSpectrumApp(data []byte) bool {
	var apiVersion, kind []byte
	s := jsonscan.Scanner{Data: data}
	s.Space()
	plain := s.Members(func(key string, value []byte) bool {
		switch key {
		case "apiVersion":
			apiVersion = value
		case "kind":
			kind = value
		default:
			return !foldsTo(key, "apiVersion", "kind")
		}
		return true
	}) && s.End()
	// Compared as JSON text: a value with escapes, or no string, is not
	// these (and is client-go's to read).
	return plain && string(apiVersion) == spectrumAppAPIVersionJSON && string(kind) == spectrumAppKindJSON
}

var (
	spectrumAppAPIVersionJSON = `"` + spectrumAppKind.GroupVersion().String() + `"`
	spectrumAppKindJSON       = `"` + spectrumAppKind.Kind + `"`
)

// eventType is the text of a watch event's type, a JSON string without
// escapes; the usual ones are shared, not copied.
func eventType(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' || bytes.IndexByte(value, '\\') >= 0 {
		return "", false
	}
	text := value[1 : len(value)-1]
	for _, known := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted, watch.Bookmark, watch.Error} {
		if string(text) == string(known) {
			return string(known), true
		}
	}
	return string(text), true
}

// foldsTo reports whether key matches one of names when case is ignored,
// as encoding/json matches keys to fields.
func foldsTo(key string, names ...string) bool {
	for _, name := range names {
		if strings.EqualFold(key, name) {
			return true
		}
	}
	return false
}
