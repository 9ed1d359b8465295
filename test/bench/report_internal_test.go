//go:build bench

package bench

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// A run is compared with the results committed last: that file must read
// back, or every regression goes unflagged ("no baseline to compare with").
func TestCommittedResultsAreABaseline(t *testing.T) {
	base, err := loadBaseline(filepath.Join(testenv.RepoRoot(), "docs", "bench-results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Rows) == 0 {
		t.Fatal("docs/bench-results.json has no rows")
	}
}

func TestResultsReadBackAsABaseline(t *testing.T) {
	cfg := config{Apps: 1000, Window: time.Second, SharedWindow: 10 * time.Second, Latency: 15 * time.Millisecond,
		Resync: 5 * time.Second, ScaleApps: []int{1000}}
	rep := newReport(cfg)
	rep.add("scale 1000", "manager CPU per created app", "≤ 2.5ms", "2.00 ms", "yes", 2, "ms")
	path := filepath.Join(t.TempDir(), "results.json")
	if err := rep.write(path); err != nil {
		t.Fatal(err)
	}
	base, err := loadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if base.Config.Window != cfg.Window || base.Config.Resync != cfg.Resync || base.Config.Apps != cfg.Apps {
		t.Errorf("config read back as %+v, want %+v", base.Config, cfg)
	}
	next := newReport(cfg)
	next.add("scale 1000", "manager CPU per created app", "≤ 2.5ms", "3.00 ms", "no", 3, "ms")
	if worse := next.compare(base, path); len(worse) != 1 {
		t.Errorf("a row 50 %% worse than the baseline was flagged %d times, want once", len(worse))
	}
}
