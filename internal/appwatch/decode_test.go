package appwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/util/intstr"
	restclientwatch "k8s.io/client-go/rest/watch"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// decoded is one event as a watch hands it on.
type decoded struct {
	Type   string
	Object runtime.Object
	Err    string
}

// decodeStream reads stream as client-go's rest client reads a watch
// response through serialization (newStreamWatcher), until an error.
func decodeStream(t testing.TB, serialization runtime.NegotiatedSerializer, stream []byte, limit int) []decoded {
	t.Helper()
	negotiator := runtime.NewClientNegotiator(serialization, v1alpha1.GroupVersion)
	objects, events, framer, err := negotiator.StreamDecoder(runtime.ContentTypeJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	decoder := restclientwatch.NewDecoder(streaming.NewDecoder(framer.NewFrameReader(io.NopCloser(bytes.NewReader(stream))), events), objects)
	var out []decoded
	for len(out) < limit {
		typ, obj, err := decoder.Decode()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				out = append(out, decoded{Err: "error"})
			}
			return out
		}
		out = append(out, decoded{Type: string(typ), Object: obj})
	}
	return out
}

// scheme is built once: building it is most of a fuzz run's time.
var scheme = testenv.Scheme()

func clientGo() runtime.NegotiatedSerializer {
	return serializer.WithoutConversionCodecFactory{CodecFactory: serializer.NewCodecFactory(scheme)}
}

func onePass(t testing.TB) (runtime.NegotiatedSerializer, *Watcher) {
	t.Helper()
	w := &Watcher{}
	serialization, err := newNegotiated(scheme, w)
	if err != nil {
		t.Fatal(err)
	}
	return serialization, w
}

// sampleApp is a SpectrumApp as the apiserver sends it.
func sampleApp() []byte {
	port := intstr.FromString("8000-8010")
	yes := true
	app := v1alpha1.SpectrumApp{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "SpectrumApp"},
		ObjectMeta: metav1.ObjectMeta{Name: "ssh", Namespace: "team-a", UID: "5e1c2a9e-0c1b-4f8e-9d43-2a7e3c1d9b10",
			ResourceVersion: "4711", Generation: 2, Labels: map[string]string{"team": "a"},
			Annotations: map[string]string{"note": "braces { and [ and \"quotes\" \\ in a string"},
			Finalizers:  []string{"spectrum.cloudflare-operator.io/finalizer"}},
		Spec: v1alpha1.SpectrumAppSpec{ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", Protocol: "tcp/22",
			DNS: v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"}, OriginDirect: []string{"tcp://192.0.2.1:22"},
			OriginPort: &port, IPFirewall: &yes, TLS: "off"},
		Status: v1alpha1.SpectrumAppStatus{ApplicationID: "ea95132c15732412d22c1476fa83f27a", ObservedGeneration: 2,
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Synced", Message: "in sync", ObservedGeneration: 2}},
			EdgeIPs:    []string{"198.51.100.1"}},
	}
	data, err := json.Marshal(&app)
	if err != nil {
		panic(err)
	}
	return data
}

func event(typ string, object []byte) []byte {
	return []byte(fmt.Sprintf(`{"type":%q,"object":%s}`, typ, object))
}

// eventSeeds are the events a watch of SpectrumApps meets, and variants
// that only client-go's decoders may read.
func eventSeeds() [][]byte {
	app := sampleApp()
	bookmark := `{"kind":"SpectrumApp","apiVersion":"spectrum.cloudflare-operator.io/v1alpha1","metadata":{"resourceVersion":"4712","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"protocol":"","dns":{"type":"","name":""}},"status":{}}`
	status := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (4711)","reason":"Expired","code":410}`
	return [][]byte{
		event("ADDED", app),
		event("MODIFIED", app),
		event("DELETED", app),
		event("BOOKMARK", []byte(bookmark)),
		event("ERROR", []byte(status)),
		[]byte(" \n" + string(event("ADDED", app)) + "\n"),
		[]byte(`{"object":` + string(app) + `,"type":"ADDED"}`),
		[]byte(`{"type":"ADDED","object":null}`),
		[]byte(`{"type":"ADDED"}`),
		[]byte(`{"type":"ADD\u0045D","object":` + string(app) + `}`),
		[]byte(`{"type":"ADDED","Object":` + string(app) + `}`),
		[]byte(`{"type":"ADDED","kind":"WatchEvent","object":` + string(app) + `}`),
		[]byte(`{"type":"ADDED","object":` + strings.Replace(string(app), `"kind"`, `"Kind"`, 1) + `}`),
		[]byte(`{"type":"ADDED","object":` + strings.Replace(string(app), `"SpectrumApp"`, `"Spectrum\u0041pp"`, 1) + `}`),
		[]byte(`{"type":"ADDED","object":` + strings.Replace(string(app), `"spec":{`, `"spec":{"zoneID":5,`, 1) + `}`),
		[]byte(`{"type":"ADDED","object":` + strings.Replace(string(app), `"spec":{`, `"spec":{"Protocol":"udp/53",`, 1) + `}`),
		[]byte(`{"type":"ADDED","object":` + string(app) + `,"type":"MODIFIED"}`),
		[]byte(`{"type":5,"object":{}}`),
		[]byte(`{"type":"ADDED","object":{"kind":"SpectrumApp"}}`),
		[]byte(`{"type":"ADDED","object":{"apiVersion":"v1","kind":"SpectrumApp"}}`),
		[]byte(`{"type":"ADDED","object":"text"}`),
		[]byte(`{"type":"ADDED","object":{]}`),
		[]byte(`[1,2]`),
		[]byte(`{"type":"ADDED","object":{"apiVersion":"spectrum.cloudflare-operator.io/v1alpha1","kind":"SpectrumApp","metadata":{"name":"` + "\xff" + `"}}}`),
	}
}

// TestEventsDecodeAsClientGoDecodes holds the one-pass decoders to
// client-go's answer for every seed, and checks that the events a watch
// of SpectrumApps usually meets do take the one pass.
func TestEventsDecodeAsClientGoDecodes(t *testing.T) {
	for i, seed := range eventSeeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			fast, w := onePass(t)
			want := decodeStream(t, clientGo(), seed, 1)
			got := decodeStream(t, fast, seed, 1)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s\none pass: %#v\nclient-go: %#v", seed, got, want)
			}
			onePassApps, _ := w.Decoded()
			if i < 4 && onePassApps != 1 {
				t.Errorf("%s: a plain SpectrumApp event was not decoded in one pass", seed)
			}
		})
	}
}

// TestStreamOfEventsDecodesAsClientGoDecodes reads a stream of many events,
// as a watch sends them, through both.
func TestStreamOfEventsDecodesAsClientGoDecodes(t *testing.T) {
	var stream bytes.Buffer
	for _, seed := range eventSeeds()[:6] {
		stream.Write(seed)
		stream.WriteByte('\n')
	}
	fast, w := onePass(t)
	want := decodeStream(t, clientGo(), stream.Bytes(), 100)
	got := decodeStream(t, fast, stream.Bytes(), 100)
	if len(want) != 6 || !reflect.DeepEqual(got, want) {
		t.Fatalf("one pass: %#v\nclient-go: %#v", got, want)
	}
	if apps, handedOn := w.Decoded(); apps != 5 || handedOn != 1 {
		t.Errorf("decoded %d apps in one pass and handed %d on; want 5 and the ERROR event's Status", apps, handedOn)
	}
}

// FuzzEventDecoding holds the one-pass reading of a watch stream (framer,
// envelope, object) to client-go's for its first two events: the same
// type and object, or an error from both.
func FuzzEventDecoding(f *testing.F) {
	for _, seed := range eventSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		fast, _ := onePass(t)
		want := decodeStream(t, clientGo(), stream, 2)
		got := decodeStream(t, fast, stream, 2)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q\none pass: %#v\nclient-go: %#v", stream, got, want)
		}
	})
}
