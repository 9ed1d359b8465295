//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
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
}

// report collects rows and details from every scenario.
type report struct {
	mu       sync.Mutex
	Time     string                    `json:"time"`
	Duration string                    `json:"duration"`
	Machine  machine                   `json:"machine"`
	Config   config                    `json:"config"`
	Rows     []row                     `json:"rows"`
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
	r.Rows = append(r.Rows, row{scenario, metric, goal, measured, met, value, unit})
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
	b.WriteString("| scenario | metric | goal | measured | met |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", row.Scenario, row.Metric, row.Goal, row.Measured, row.Met)
	}
	return b.String()
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
