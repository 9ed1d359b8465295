package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// defaultGCPercent is the garbage collector's target (GOGC) unless the
// environment sets one. The manager's live heap is mostly its caches and
// grows with the number of SpectrumApps; Go's default of 100 lets the heap
// reach twice that before collecting. 50 keeps the peak at 1.5 times the
// live heap at every scale, for about a fifth more CPU while apps converge:
// 10,000 apps in under 100 MiB instead of ~118 MiB (docs/benchmarks.md).
const defaultGCPercent = 50

// memoryLimitShare of the container's memory limit is given to the Go
// runtime as its soft limit (GOMEMLIMIT) unless the environment sets one:
// near the limit the collector works harder instead of the pod being
// OOM-killed. The rest is for the binary's own pages and the kernel.
const memoryLimitShare = 0.9

// tuneMemory applies defaultGCPercent and the container-derived soft limit,
// each unless its environment variable is set, and logs what it chose.
func tuneMemory(log logr.Logger) {
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent)
	}
	softLimit := os.Getenv("GOMEMLIMIT")
	if softLimit == "" {
		softLimit = "none"
		if limit, ok := containerMemoryLimit(os.DirFS("/")); ok {
			bytes := int64(float64(limit) * memoryLimitShare)
			debug.SetMemoryLimit(bytes)
			softLimit = strconv.FormatInt(bytes, 10)
		}
	}
	log.Info("garbage collector", "GOGC", gogc, "GOMEMLIMIT", softLimit)
}

// containerMemoryLimit is the memory limit, in bytes, of the cgroup this
// process runs in (v2 or v1), if it has one.
func containerMemoryLimit(root fs.FS) (int64, bool) {
	own, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	var candidates []string
	scanner := bufio.NewScanner(bytes.NewReader(own))
	for scanner.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(scanner.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir := strings.TrimPrefix(path.Clean("/"+parts[2]), "/")
		switch {
		case parts[0] == "0" && parts[1] == "":
			// A container with its own cgroup namespace sees its cgroup
			// at the root; otherwise at its path.
			candidates = append(candidates, path.Join("sys/fs/cgroup", dir, "memory.max"), "sys/fs/cgroup/memory.max")
		case hasController(parts[1], "memory"):
			candidates = append(candidates, path.Join("sys/fs/cgroup/memory", dir, "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes")
		}
	}
	for _, file := range candidates {
		if limit, ok := readLimit(root, file); ok {
			return limit, true
		}
	}
	return 0, false
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit file; "max" (v2) and v1's huge
// "no limit" values are no limit.
func readLimit(root fs.FS, file string) (int64, bool) {
	content, err := fs.ReadFile(root, file)
	if err != nil {
		return 0, false
	}
	value := strings.TrimSpace(string(content))
	limit, err := strconv.ParseInt(value, 10, 64)
	if err != nil || limit <= 0 || limit >= math.MaxInt64/2 {
		return 0, false
	}
	return limit, true
}
