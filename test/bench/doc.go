//go:build bench

// Package bench measures the operator end to end (`make bench`): the real
// manager binary, a real kube-apiserver and etcd, and the Spectrum API
// simulator, all on 127.0.0.1, started by test/harness.
//
// TestBench runs the scenarios of issue 8 and prints one table, each row a
// goal, what was measured and whether it was met; the same results go to
// bin/bench/results.json (BENCH_OUT). Environment knobs are listed in
// loadConfig; docs/benchmarks.md explains the scenarios and the last run.
//
// Every file carries the bench build tag, so `go test ./...` (make test)
// does not compile it.
package bench
