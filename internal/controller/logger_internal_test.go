package controller

import (
	"regexp"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// countingSink counts the values bound to it with WithValues.
type countingSink struct {
	logr.LogSink
	bound *int
}

// Init: the sink it counts for was initialised when funcr made it.
func (countingSink) Init(logr.RuntimeInfo) {}

func (c countingSink) WithValues(keysAndValues ...any) logr.LogSink {
	*c.bound += len(keysAndValues) / 2
	return countingSink{c.LogSink.WithValues(keysAndValues...), c.bound}
}

func (c countingSink) WithCallDepth(depth int) logr.LogSink {
	return countingSink{c.LogSink.(logr.CallDepthLogSink).WithCallDepth(depth), c.bound}
}

// A reconcile's logger writes what controller-runtime's default writes
// (the same keys, in the same order, from the caller's line), and binds
// nothing to the sink until a line is written.
func TestReconcileLoggerWritesTheDefaultsKeysAndBindsNothingUntilALine(t *testing.T) {
	var lines []string
	newBase := func(bound *int) logr.Logger {
		sink := funcr.New(func(prefix, args string) { lines = append(lines, args) },
			funcr.Options{LogCaller: funcr.All}).GetSink()
		return logr.New(countingSink{sink, bound})
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "ssh"}}

	var boundLazily int
	lazy := reconcileLogs(newBase(&boundLazily), controllerName)(&req)
	boundBefore := boundLazily
	lazy = lazy.WithValues("reconcileID", "r-1")
	lazy.V(1).Info("not written at the default verbosity")
	if boundLazily != boundBefore {
		t.Fatalf("%d values bound to the sink by a reconcile that wrote nothing, want none", boundLazily-boundBefore)
	}
	lazy.Info("Created", "event", "Created")
	var boundAtOnce int
	newBase(&boundAtOnce).WithValues("controller", controllerName, "controllerGroup", "spectrum.cloudflare-operator.io", "controllerKind", "SpectrumApp").
		WithValues("SpectrumApp", klog.KRef(req.Namespace, req.Name)).
		WithValues("namespace", req.Namespace, "name", req.Name).
		WithValues("reconcileID", "r-1").
		Info("Created", "event", "Created")

	if len(lines) != 2 {
		t.Fatalf("wrote %d lines, want 2: %q", len(lines), lines)
	}
	// The two lines are written from different lines of this file.
	sameLine := regexp.MustCompile(`"line"=\d+`)
	if sameLine.ReplaceAllString(lines[0], "") != sameLine.ReplaceAllString(lines[1], "") {
		t.Fatalf("the lazy logger wrote\n%s\ncontroller-runtime's default writes\n%s", lines[0], lines[1])
	}
	for _, line := range lines {
		if !strings.Contains(line, `"caller"={"file"="logger_internal_test.go"`) {
			t.Fatalf("the line names another caller than the test: %s", line)
		}
	}
	if nilReq := reconcileLogs(newBase(new(int)), controllerName)(nil); !nilReq.Enabled() {
		t.Fatal("the controller's own logger (no request) is not enabled")
	}
}
