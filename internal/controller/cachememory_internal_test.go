package controller

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// readyAppEvent is a Ready app as its watch events bring it to the cache,
// with everything the apiserver and the controller give it.
const readyAppEvent = `{"apiVersion":"spectrum.cloudflare-operator.io/v1alpha1","kind":"SpectrumApp",
"metadata":{"name":"app-%05d","namespace":"team-a","uid":"6f1c2a4e-8b3d-4c5e-9f70-%012d","resourceVersion":"%d","generation":1,
"creationTimestamp":"2026-12-04T10:00:00Z","finalizers":["spectrum.cloudflare-operator.io/finalizer"]},
"spec":{"zoneID":"023e105f4ecef8ad9ca31a8372d0c353","protocol":"tcp/22","dns":{"type":"CNAME","name":"app-%05d.example.com"},
"originDirect":["tcp://192.0.2.1:22"],"edgeIPs":{"type":"dynamic","connectivity":"all"},"credentialsRef":{"name":"cloudflare"}},
"status":{"zoneID":"023e105f4ecef8ad9ca31a8372d0c353","applicationID":"%032x","reconcilePolicy":"manage","syncedGeneration":1,"observedGeneration":1,
"createSettled":"2026-12-04T10:00:00Z","createdOn":"2026-12-04T10:00:00Z","modifiedOn":"2026-12-04T10:00:00Z",
"conditions":[{"type":"Ready","status":"True","observedGeneration":1,"reason":"Synced","message":"` + syncedMessage + `","lastTransitionTime":"2026-12-04T10:00:00Z"},
{"type":"Reconciling","status":"False","observedGeneration":1,"reason":"Synced","message":"Nothing to do","lastTransitionTime":"2026-12-04T10:00:00Z"},
{"type":"Stalled","status":"False","observedGeneration":1,"reason":"Synced","message":"Nothing to do","lastTransitionTime":"2026-12-04T10:00:00Z"}]}}`

// maxCachedAppBytes bounds what a Ready app costs the manager's cache
// besides what is its own alone (name, hostname, origin, IDs): at 20,000
// apps, each byte is 20 KB of the manager's memory, whose goal is 100 MiB
// (docs/benchmarks.md). The typed SpectrumApp alone is 704 bytes; as a
// typed app, 892 bytes each were cached.
const maxCachedAppBytes = 400

func TestCachedAppMemory(t *testing.T) {
	const apps = 5000
	events := make([][]byte, apps)
	for i := range events {
		events[i] = fmt.Appendf(nil, readyAppEvent, i, i, 1000+i, i, i)
	}
	transform := CacheTransform()
	cached := make([]any, apps)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, event := range events {
		app := &v1alpha1.SpectrumApp{}
		if err := json.Unmarshal(event, app); err != nil {
			t.Fatal(err)
		}
		out, err := transform(app)
		if err != nil {
			t.Fatal(err)
		}
		cached[i] = out
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perApp := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / apps
	t.Logf("%d bytes per cached app", perApp)
	if perApp > maxCachedAppBytes {
		t.Errorf("a cached app costs %d bytes, want at most %d", perApp, maxCachedAppBytes)
	}
	runtime.KeepAlive(cached)
	runtime.KeepAlive(events)
}
