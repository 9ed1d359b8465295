// Package harness runs the operator the way it runs in production, as its
// own process, against a real control plane and the Spectrum API simulator,
// for tests that kill, restart and starve it: the chaos suite and the
// benchmarks.
//
// Start brings up, all on 127.0.0.1:
//   - an envtest kube-apiserver and etcd with the operator's CRDs, and an
//     admin kubeconfig for the manager;
//   - the simulator (spectrumtest) in this process, on a port that survives
//     SimulatorOutage;
//   - the real manager binary (built once per process by BuildManager) as a
//     child process with webhooks off, its output captured to a file.
//
// Stop tears down what Start started. Processes are only ever signalled
// through the handles the harness holds, never by name.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// Options configure a Harness.
type Options struct {
	// Dir holds the kubeconfig, the manager's log and the apiserver's
	// certificates. When empty, a temporary directory that Stop removes.
	Dir string
	// Simulator is the simulated Cloudflare world.
	Simulator spectrumtest.Config
	// Manager sets the manager's command line.
	Manager ManagerOptions
	// Logf, when set, is told what the harness does (t.Logf, log.Printf).
	Logf func(format string, args ...any)
}

// Harness is a running control plane, simulator and manager.
type Harness struct {
	// Dir is the working directory (see Options.Dir).
	Dir string
	// Kubeconfig is the path of the admin kubeconfig the manager uses.
	Kubeconfig string
	// Config reaches the apiserver as an admin, for test clients.
	Config *rest.Config
	// Client talks to the apiserver directly (no cache), with the
	// SpectrumApp API in its scheme.
	Client client.Client
	// Sim is the simulator: its state, faults and counters.
	Sim *spectrumtest.Simulator
	// SimURL is the simulator's API base URL, as the manager is given it.
	SimURL string
	// Manager is the operator's process.
	Manager *Manager

	env     *envtest.Environment
	sim     *simServer
	ownDir  bool
	logf    func(string, ...any)
	stopped sync.Once
}

// Start starts the control plane, the simulator and the manager (unless
// opts.Manager.DeferStart), and waits until the manager is ready. On error
// it stops whatever it started.
func Start(ctx context.Context, opts Options) (h *Harness, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h = &Harness{Dir: opts.Dir, logf: logf}
	// The error returns below set h to nil; stop what was started through a
	// copy of the pointer.
	started := h
	defer func() {
		if err != nil {
			_ = started.Stop()
			h = nil
		}
	}()
	if h.Dir == "" {
		if h.Dir, err = os.MkdirTemp("", "spectrum-harness-"); err != nil {
			return nil, err
		}
		h.ownDir = true
	}

	if opts.Manager.Binary == "" {
		// Built first: a compile error should not cost a control plane.
		if _, err := BuildManager(ctx); err != nil {
			return nil, err
		}
	}
	if err := h.startControlPlane(); err != nil {
		return nil, err
	}
	if err := h.startSimulator(opts.Simulator); err != nil {
		return nil, err
	}
	if h.Manager, err = NewManager(ctx, h.Dir, h.Kubeconfig, h.SimURL, opts.Manager, logf); err != nil {
		return nil, err
	}
	if !opts.Manager.DeferStart {
		if err := h.Manager.Start(ctx); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (h *Harness) startControlPlane() error {
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		return err
	}
	// The apiserver's certificates live in our directory rather than one
	// envtest deletes on stop, so RestartAPIServer can start it again with
	// the same serving certificate and client CA.
	apiserver := env.ControlPlane.GetAPIServer()
	apiserver.CertDir = filepath.Join(h.Dir, "apiserver")
	// With clients holding watches, kube-apiserver's graceful shutdown
	// takes up to a minute; after this long envtest kills it instead.
	env.ControlPlaneStopTimeout = apiserverStopTimeout
	if err := os.MkdirAll(apiserver.CertDir, 0o700); err != nil {
		return err
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	h.env = env
	h.Config = cfg
	if h.Client, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return err
	}
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	h.Kubeconfig = filepath.Join(h.Dir, "kubeconfig")
	if err := os.WriteFile(h.Kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	h.logf("harness: control plane at %s", cfg.Host)
	return nil
}

func (h *Harness) startSimulator(cfg spectrumtest.Config) error {
	sim, err := spectrumtest.New(cfg)
	if err != nil {
		return err
	}
	addr, err := freeAddress()
	if err != nil {
		return err
	}
	h.Sim = sim
	h.sim = newSimServer(addr, sim)
	if err := h.sim.start(); err != nil {
		return err
	}
	h.SimURL = "http://" + addr + spectrumtest.APIPrefix
	h.logf("harness: simulator at %s", h.SimURL)
	return nil
}

// Stop stops the manager, the simulator and the control plane, and removes
// Dir if Start created it. Later calls do nothing.
func (h *Harness) Stop() error {
	var errs []error
	h.stopped.Do(func() {
		if h.Manager != nil {
			errs = append(errs, h.Manager.Stop())
		}
		if h.sim != nil {
			h.sim.stop()
		}
		if h.env != nil {
			errs = append(errs, h.env.Stop())
		}
		if h.ownDir && h.Dir != "" {
			errs = append(errs, os.RemoveAll(h.Dir))
		}
	})
	return errors.Join(errs...)
}

// apiserverStopTimeout bounds the apiserver's graceful shutdown.
const apiserverStopTimeout = 5 * time.Second

// RestartAPIServer stops the kube-apiserver (SIGTERM; SIGKILL when it has
// not exited after 5s, as happens while clients hold watches), waits
// downtime, and starts it again on the same address with the same
// certificates, so existing kubeconfigs keep working. etcd and its data
// stay.
func (h *Harness) RestartAPIServer(downtime time.Duration) error {
	apiserver := h.env.ControlPlane.GetAPIServer()
	address := apiserver.SecureServing.HostPort()
	if err := apiserver.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return fmt.Errorf("stopping the apiserver: %w", err)
	}
	// After a SIGKILL, Stop returns at once: wait until the port is free.
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", address, 100*time.Millisecond)
		if err != nil {
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("the apiserver still listens on %s after stopping", address)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.logf("harness: apiserver stopped for %s", downtime)
	time.Sleep(downtime)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = apiserver.Start(); err == nil {
			h.logf("harness: apiserver started again")
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("starting the apiserver again: %w", err)
}

// SimulatorOutage closes the simulator's listener and every open
// connection (clients see resets, then refused connections) for downtime,
// then serves again on the same port with the same state.
func (h *Harness) SimulatorOutage(downtime time.Duration) error {
	h.sim.stop()
	h.logf("harness: simulator down for %s", downtime)
	time.Sleep(downtime)
	if err := h.sim.start(); err != nil {
		return err
	}
	h.logf("harness: simulator up again")
	return nil
}

// Namespace creates a namespace named prefix plus a random suffix.
func (h *Harness) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := h.Client.Create(ctx, ns); err != nil {
		return "", fmt.Errorf("creating a namespace: %w", err)
	}
	return ns.Name, nil
}

// WrapSimulator puts wrap's handler in front of the simulator, to watch or
// interfere with requests (kill the manager the moment a create is applied,
// count calls). restore puts the simulator back as it was.
func (h *Harness) WrapSimulator(wrap func(http.Handler) http.Handler) (restore func()) {
	previous := h.sim.current()
	h.sim.handler.Store(&handlerBox{wrap(previous)})
	return func() { h.sim.handler.Store(&handlerBox{previous}) }
}

// simServer serves the simulator on a fixed address it can give up and
// take again.
type simServer struct {
	addr    string
	handler atomic.Pointer[handlerBox]

	mu     sync.Mutex
	server *http.Server
}

type handlerBox struct{ http.Handler }

func newSimServer(addr string, handler http.Handler) *simServer {
	s := &simServer{addr: addr}
	s.handler.Store(&handlerBox{handler})
	return s
}

func (s *simServer) current() http.Handler { return s.handler.Load().Handler }

func (s *simServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.current().ServeHTTP(w, r)
}

func (s *simServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var listener net.Listener
	var err error
	// The port was ours a moment ago; give the kernel a little time should
	// something else hold it briefly.
	for attempt := 0; attempt < 50; attempt++ {
		if listener, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("serving the simulator on %s: %w", s.addr, err)
	}
	s.server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func(server *http.Server) { _ = server.Serve(listener) }(s.server)
	return nil
}

func (s *simServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server != nil {
		_ = s.server.Close()
		s.server = nil
	}
}

// freeAddress returns a loopback host:port that was free a moment ago.
func freeAddress() (string, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer listener.Close()
	return listener.Addr().String(), nil
}
