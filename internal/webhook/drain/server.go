// Package drain serves admission webhooks through a replica's shutdown
// without refusing a request.
//
// When a pod is deleted, the kubelet sends SIGTERM while the pod's removal
// from the Service's endpoints is still on its way to every node, and the
// apiserver keeps its HTTP/1.1 connections to the pod alive past both.
// controller-runtime's webhook server, told to stop, closes its listener and
// its idle connections at once: a new connection still routed to the pod is
// refused, and a request the apiserver sends on an idle connection as it is
// closed ends in EOF. Either way an apply is refused (failurePolicy Fail).
package drain

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Server is a webhook server that, told to stop, first drains: for Period it
// keeps accepting connections and serving, answers every request with
// "Connection: close" so the apiserver opens its next connection to a
// replica that stays, and reports itself not ready. Only then does the
// server it wraps close.
type Server struct {
	webhook.Server
	Period time.Duration

	draining atomic.Bool
}

var _ webhook.Server = (*Server)(nil)

// New wraps server so that it drains for period before it stops.
func New(server webhook.Server, period time.Duration) *Server {
	return &Server{Server: server, Period: period}
}

// Register registers the hook at path, closing each connection it answers
// once the server drains.
func (s *Server) Register(path string, hook http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// HTTP/2 has GOAWAY for this, sent by the wrapped server's shutdown.
		if s.draining.Load() && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		hook.ServeHTTP(w, r)
	}))
}

// Start serves until ctx is done, then drains for Period before stopping.
func (s *Server) Start(ctx context.Context) error {
	serving, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-serving.Done():
			return
		case <-ctx.Done():
		}
		s.draining.Store(true)
		logf.Log.WithName("webhook").Info("Draining the webhook server's connections before it stops", "period", s.Period)
		timer := time.NewTimer(s.Period)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-serving.Done():
		}
		stop()
	}()
	return s.Server.Start(serving)
}

// ErrDraining is the readiness check's answer while the server drains.
var ErrDraining = errors.New("the webhook server is draining its connections before it stops")

// StartedChecker is the wrapped server's, failing while the server drains,
// so the pod leaves the endpoints if it has not already.
func (s *Server) StartedChecker() healthz.Checker {
	started := s.Server.StartedChecker()
	return func(r *http.Request) error {
		if s.draining.Load() {
			return ErrDraining
		}
		return started(r)
	}
}
