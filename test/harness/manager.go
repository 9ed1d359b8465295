package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// ManagerOptions set the manager's command line. Zero values pick settings
// fit for tests against the simulator: far faster than Cloudflare's real
// budget, with a short resync.
type ManagerOptions struct {
	// Binary is a manager binary to run; BuildManager's when empty.
	Binary string
	// ResyncPeriod is --resync-period; 5s when zero.
	ResyncPeriod time.Duration
	// RequestsPerSecond and Burst are --cloudflare-requests-per-second and
	// --cloudflare-burst, the per-token budget; 200 and 50 when zero.
	RequestsPerSecond float64
	Burst             int
	// RequestTimeout is --cloudflare-request-timeout; 5s when zero.
	RequestTimeout time.Duration
	// MaxConcurrentReconciles is --max-concurrent-reconciles; 4 when zero.
	MaxConcurrentReconciles int
	// MetricsBindAddress is --metrics-bind-address, served over plain HTTP
	// (--metrics-secure=false); "0" (off) when empty.
	MetricsBindAddress string
	// LogLevel is --zap-log-level (debug, info, error or a number); info
	// when empty.
	LogLevel string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// DeferStart leaves the manager stopped after Start; call
	// Manager.Start when the test is ready for it.
	DeferStart bool
	// CommandLine, when set, is the whole command line, as an installation
	// gives it (a Deployment's args plus what only a pod would supply); the
	// fields above and NewManager's kubeconfig and apiURL are then unused.
	// It must set --health-probe-bind-address to ProbeAddress.
	CommandLine []string
	// ProbeAddress is the host:port of /readyz with CommandLine; a free
	// loopback port otherwise.
	ProbeAddress string
	// Env is added to the manager's environment.
	Env []string
}

func (o ManagerOptions) withDefaults() ManagerOptions {
	if o.ResyncPeriod == 0 {
		o.ResyncPeriod = 5 * time.Second
	}
	if o.RequestsPerSecond == 0 {
		o.RequestsPerSecond = 200
	}
	if o.Burst == 0 {
		o.Burst = 50
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = "0"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	return o
}

// NewManager prepares the operator's binary (opts.Binary, or BuildManager's)
// to run against the apiserver of kubeconfig and the Cloudflare API at
// apiURL, logging to dir/manager.log, with /readyz on a free loopback port.
// It does not start it. logf, when set, is told about starts and stops.
// Harness.Start uses it; call it directly for a manager beside a control
// plane of your own (one with webhooks, say: ExtraArgs can turn them on,
// as a later flag wins).
func NewManager(ctx context.Context, dir, kubeconfig, apiURL string, opts ManagerOptions, logf func(string, ...any)) (*Manager, error) {
	opts = opts.withDefaults()
	binary := opts.Binary
	if binary == "" {
		var err error
		if binary, err = BuildManager(ctx); err != nil {
			return nil, err
		}
	}
	probe := opts.ProbeAddress
	if probe == "" {
		var err error
		if probe, err = freeAddress(); err != nil {
			return nil, err
		}
	}
	args := managerArgs(opts, kubeconfig, apiURL, probe)
	if opts.CommandLine != nil {
		args = slices.Clone(opts.CommandLine)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Manager{
		opts:    opts,
		binary:  binary,
		args:    args,
		logPath: filepath.Join(dir, "manager.log"),
		probe:   probe,
		logf:    logf,
	}, nil
}

// Manager is the operator's real binary run as a child process. Its stdout
// and stderr, over every start, go to one log file. It is safe for
// concurrent use.
type Manager struct {
	opts    ManagerOptions
	binary  string
	args    []string
	logPath string
	probe   string
	logf    func(string, ...any)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// Options returns the options the manager runs with, defaults filled in.
func (m *Manager) Options() ManagerOptions { return m.opts }

// Args returns the manager's command-line arguments.
func (m *Manager) Args() []string { return append([]string(nil), m.args...) }

// LogPath is the file the manager's stdout and stderr go to.
func (m *Manager) LogPath() string { return m.logPath }

// Log returns everything the manager has written so far.
func (m *Manager) Log() ([]byte, error) { return os.ReadFile(m.logPath) }

// ProbeAddress is the host:port of the manager's /healthz and /readyz.
func (m *Manager) ProbeAddress() string { return m.probe }

// Starts returns how many times the process was started.
func (m *Manager) Starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.starts
}

// PID returns the running process's ID, or 0 when none runs.
func (m *Manager) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return 0
	}
	return m.cmd.Process.Pid
}

// Running reports whether the process runs.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked()
}

func (m *Manager) runningLocked() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Start starts the process and waits until it is ready (see WaitReady). It
// is an error to start a running manager.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.runningLocked() {
		m.mu.Unlock()
		return errors.New("manager already running")
	}
	logFile, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	cmd := exec.Command(m.binary, m.args...)
	cmd.Env = append(os.Environ(), m.opts.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		m.mu.Unlock()
		return fmt.Errorf("starting the manager: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	m.starts++
	m.logf("harness: manager started (pid %d, start #%d)", cmd.Process.Pid, m.starts)
	m.mu.Unlock()
	return m.WaitReady(ctx)
}

// WaitReady waits until the manager's /readyz answers 200 (at most a
// minute), failing early when the process exits. Ready means serving: the
// controller may still be filling its cache.
func (m *Manager) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	if exited == nil {
		return errors.New("manager not started")
	}
	client := &http.Client{Timeout: time.Second}
	url := "http://" + m.probe + "/readyz"
	for {
		if resp, err := client.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("manager exited before it was ready; see %s", m.logPath)
		case <-ctx.Done():
			return fmt.Errorf("manager not ready: %w; see %s", ctx.Err(), m.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL, as a node failure or the OOM killer would, and waits
// for the process to be gone. Killing a stopped manager does nothing.
func (m *Manager) Kill() error { return m.signal(syscall.SIGKILL, 0) }

// Stop asks the manager to shut down (SIGTERM) and waits up to 15s, then
// kills it.
func (m *Manager) Stop() error { return m.signal(syscall.SIGTERM, 15*time.Second) }

// Exited is closed when the running process ends; nil when none was started.
func (m *Manager) Exited() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exited
}

// Restart kills the manager (SIGKILL) and starts it again.
func (m *Manager) Restart(ctx context.Context) error {
	if err := m.Kill(); err != nil {
		return err
	}
	return m.Start(ctx)
}

func (m *Manager) signal(sig syscall.Signal, grace time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return nil
	}
	pid := m.cmd.Process.Pid
	// Signalled through the Process we started, so only our child is hit.
	if err := m.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling manager pid %d: %w", pid, err)
	}
	if grace > 0 {
		select {
		case <-m.exited:
		case <-time.After(grace):
			_ = m.cmd.Process.Kill()
		}
	}
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("manager pid %d did not exit", pid)
	}
	m.logf("harness: manager pid %d ended by %s", pid, sig)
	return nil
}

func managerArgs(o ManagerOptions, kubeconfig, apiURL, probe string) []string {
	args := []string{
		"--kubeconfig", kubeconfig,
		"--cloudflare-api-url", apiURL,
		"--enable-webhooks=false",
		"--health-probe-bind-address", probe,
		"--metrics-bind-address", o.MetricsBindAddress,
		"--resync-period", o.ResyncPeriod.String(),
		"--cloudflare-requests-per-second", strconv.FormatFloat(o.RequestsPerSecond, 'f', -1, 64),
		"--cloudflare-burst", strconv.Itoa(o.Burst),
		"--cloudflare-request-timeout", o.RequestTimeout.String(),
		"--max-concurrent-reconciles", strconv.Itoa(o.MaxConcurrentReconciles),
		"--zap-log-level", o.LogLevel,
	}
	if o.MetricsBindAddress != "0" {
		args = append(args, "--metrics-secure=false")
	}
	return append(args, o.ExtraArgs...)
}

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BuildManager builds ./cmd/manager once per process (later calls return
// the same binary) into a temporary directory that RemoveBuild deletes.
func BuildManager(ctx context.Context) (string, error) {
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "spectrum-harness-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "manager")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", build.path, "./cmd/manager")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/manager: %w\n%s", err, out)
		}
	})
	return build.path, build.err
}

// RemoveBuild deletes the binary BuildManager built, if any. Call it once
// no harness of the process runs any more (at the end of TestMain).
func RemoveBuild() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}
