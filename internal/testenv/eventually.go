package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it returns "" or timeout passes, then fails the
// test with cond's last answer, which should say what was still wrong. Tests
// wait on observable state this way instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		problem := cond()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
