// Package chaos holds the operator's reliability tests: the real manager
// binary against a real control plane and the Spectrum API simulator
// (test/harness), under injected faults, SIGKILLs, outages, bad credentials
// and several tenants. See docs/reliability.md.
package chaos
