//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// profiler collects the manager's pprof profiles into dir (BENCH_PROFILE):
// CPU in slices of profileSlice while a scenario runs, which
// `go tool pprof -top DIR/NAME-cpu-*.pb.gz` merges, and the heap when asked.
type profiler struct {
	dir, addr string

	stop context.CancelFunc
	done sync.WaitGroup
}

// profileSlice is one CPU profile's length: short enough that little is
// lost when the scenario ends mid-slice.
const profileSlice = 5 * time.Second

// profileArgs gives the manager a pprof address when BENCH_PROFILE is set.
func profileArgs(t *testing.T) (args []string, p *profiler) {
	dir := os.Getenv("BENCH_PROFILE")
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddress()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--pprof-bind-address", addr}, &profiler{dir: dir, addr: addr}
}

// startCPU collects CPU profiles named name-cpu-K until stopCPU.
func (p *profiler) startCPU(ctx context.Context, t *testing.T, name string) {
	if p == nil {
		return
	}
	ctx, p.stop = context.WithCancel(ctx)
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		for k := 0; ctx.Err() == nil; k++ {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.addr, int(profileSlice.Seconds()))
			if err := p.fetch(ctx, url, fmt.Sprintf("%s-cpu-%03d.pb.gz", name, k)); err != nil && ctx.Err() == nil {
				t.Logf("CPU profile %s %d: %v", name, k, err)
				return
			}
		}
	}()
}

// stopCPU ends the CPU profiles; the slice under way is cut short (the
// manager ends it when the request goes).
func (p *profiler) stopCPU() {
	if p == nil || p.stop == nil {
		return
	}
	p.stop()
	p.done.Wait()
}

// heap saves the live heap (after a GC) as name-heap.pb.gz.
func (p *profiler) heap(ctx context.Context, t *testing.T, name string) {
	if p == nil {
		return
	}
	if err := p.fetch(ctx, "http://"+p.addr+"/debug/pprof/heap?gc=1", name+"-heap.pb.gz"); err != nil {
		t.Logf("heap profile %s: %v", name, err)
	}
}

func (p *profiler) fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sampleHeap saves the heap as of the last collection (no GC forced) as
// name-heap-K every period until the returned stop is called: a burst
// such as a restart peaks between collections, and the sample with the
// most in use shows what held the peak. Samples the manager does not
// answer (it is starting) are skipped.
func (p *profiler) sampleHeap(ctx context.Context, name string, period time.Duration) (stop func()) {
	if p == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		ticker := time.NewTicker(period)
		defer ticker.Stop()
		for k := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			if err := p.fetch(ctx, "http://"+p.addr+"/debug/pprof/heap", fmt.Sprintf("%s-heap-%03d.pb.gz", name, k)); err == nil {
				k++
			}
		}
	}()
	return func() {
		cancel()
		done.Wait()
	}
}
