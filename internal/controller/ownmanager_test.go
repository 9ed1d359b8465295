package controller_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/events"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// startOwnManager runs, until the test ends, a manager beside the suite's
// that reconciles only the SpectrumApps labelled ownManagerLabel, talking
// to the apiserver with cfg. reconciler gets the manager's client, API
// reader and an event recorder of its own (named after name); the rest of
// it (its Cloudflare connector, periods, workers) is the caller's.
func startOwnManager(t *testing.T, cfg *rest.Config, name string, reconciler *controller.SpectrumAppReconciler) {
	t.Helper()
	ownApps, err := labels.Parse(ownManagerLabel)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     testenv.Scheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.SpectrumApp{}: {Label: ownApps},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	recorder := events.New(mgr.GetClient(), mgr.GetScheme(), "spectrum-operator-"+name, ctrl.Log.WithName(name+"-events"))
	if err := mgr.Add(recorder); err != nil {
		t.Fatal(err)
	}
	reconciler.Client, reconciler.APIReader, reconciler.Recorder = mgr.GetClient(), mgr.GetAPIReader(), recorder
	if err := reconciler.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the %s manager: %v", name, err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatalf("the %s manager's cache did not sync", name)
	}
}
