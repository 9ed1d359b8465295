//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// row is one line of the table: a goal, what was measured, whether it was
// met. Met is "yes", "no", or "info" for a number reported for context.
type row struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Goal     string  `json:"goal"`
	Measured string  `json:"measured"`
	Met      string  `json:"met"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit,omitempty"`
	// Change is the value's change from the same row of the baseline
	// (see compare), "" when it has none.
	Change string `json:"change,omitempty"`
	// Worse is true when that change is a regression of more than
	// regressionThreshold.
	Worse bool `json:"worse,omitempty"`
}

// regressionThreshold is how much worse than the baseline a row may get
// before the table flags it.
const regressionThreshold = 0.20

// higherIsBetter is true for the rows whose value should rise: shares
// (percent). Every other value is a time, a size, a count or a ratio to a
// bound, which should fall.
func (r row) higherIsBetter() bool { return r.Unit == "%" }

// report collects rows and details from every scenario.
type report struct {
	mu       sync.Mutex
	Time     string                    `json:"time"`
	Duration string                    `json:"duration"`
	Machine  machine                   `json:"machine"`
	Config   config                    `json:"config"`
	Rows     []row                     `json:"rows"`
	Baseline string                    `json:"baseline,omitempty"`
	Details  map[string]map[string]any `json:"details"`
}

type machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	MemTotal   string `json:"memTotal"`
	GoVersion  string `json:"goVersion"`
	LoadBefore string `json:"loadBefore"`
	LoadAfter  string `json:"loadAfter"`
}

func newReport(cfg config) *report {
	return &report{
		Time:    time.Now().UTC().Format(time.RFC3339),
		Config:  cfg,
		Details: map[string]map[string]any{},
		Machine: machine{
			CPUs:      runtime.NumCPU(),
			CPUModel:  cpuModel(),
			MemTotal:  memTotal(),
			GoVersion: runtime.Version(),
		},
	}
}

// add records a row; met is computed by the caller (info rows pass "info").
func (r *report) add(scenario, metric, goal, measured, met string, value float64, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, row{Scenario: scenario, Metric: metric, Goal: goal, Measured: measured, Met: met, Value: value, Unit: unit})
}

// detail records a value for the JSON only.
func (r *report) detail(scenario, key string, value any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Details[scenario] == nil {
		r.Details[scenario] = map[string]any{}
	}
	r.Details[scenario][key] = value
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// table renders the rows as a Markdown table, ready for docs/benchmarks.md.
func (r *report) table() string {
	var b strings.Builder
	b.WriteString("| scenario | metric | goal | measured | met | vs last |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		change := row.Change
		if row.Worse {
			change = "**" + change + " worse**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", row.Scenario, row.Metric, row.Goal, row.Measured, row.Met, change)
	}
	return b.String()
}

// loadBaseline reads the results a run is compared with: BENCH_BASELINE,
// or the results committed with the code (docs/bench-results.json); "none"
// compares with nothing.
func loadBaseline(path string) (*report, error) {
	if path == "none" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var base report
	if err := json.Unmarshal(data, &base); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &base, nil
}

// compare sets each row's change from the row of base with the same
// scenario and metric, and returns the rows more than
// regressionThreshold worse. Rows at zero in both are unchanged; a row
// that leaves zero the wrong way is worse by any amount.
func (r *report) compare(base *report, name string) (worse []row) {
	if base == nil {
		return nil
	}
	r.Baseline = fmt.Sprintf("%s (%s)", name, base.Time)
	previous := map[[2]string]float64{}
	for _, row := range base.Rows {
		previous[[2]string{row.Scenario, row.Metric}] = row.Value
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		old, ok := previous[[2]string{row.Scenario, row.Metric}]
		if !ok {
			continue
		}
		grew := row.Value - old
		if row.higherIsBetter() {
			grew = -grew
		}
		switch {
		case old == 0 && row.Value == 0:
			row.Change = "="
		case old == 0:
			row.Change = fmt.Sprintf("%g → %g", old, row.Value)
			row.Worse = grew > 0
		default:
			change := (row.Value - old) / math.Abs(old)
			row.Change = fmt.Sprintf("%+.0f %%", 100*change)
			row.Worse = grew/math.Abs(old) > regressionThreshold
		}
		if row.Worse {
			worse = append(worse, *row)
		}
	}
	return worse
}

func (r *report) machineSummary() string {
	m := r.Machine
	return fmt.Sprintf("machine: %d CPUs, %s, %s memory, %s; load average before %s, after %s; took %s\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.GoVersion, m.LoadBefore, m.LoadAfter, r.Duration)
}

func (r *report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func cpuModel() string {
	return procField("/proc/cpuinfo", "model name", ":")
}

func memTotal() string {
	kib := procField("/proc/meminfo", "MemTotal", ":")
	var n int64
	if _, err := fmt.Sscanf(kib, "%d kB", &n); err != nil {
		return kib
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// procField returns the value of the first "key<sep> value" line of file.
func procField(file, key, sep string) string {
	f, err := os.Open(file)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), sep)
		if ok && strings.TrimSpace(name) == key {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}
