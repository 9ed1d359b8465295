package testenv

import (
	"testing"
	"time"
)

// Eventually polls cond until it returns "" or timeout passes, then fails the
// test with cond's last answer, which should say what was still wrong. Tests
// wait on observable state this way instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() string, opts ...Option) {
	t.Helper()
	o := options(opts)
	deadline := time.Now().Add(timeout)
	for {
		problem := cond()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, problem)
		}
		time.Sleep(o.interval)
	}
}

// Consistently polls cond for the whole duration and fails the test as soon
// as it returns something other than "": that is how a test shows that
// nothing happened. Pair it with a positive control, a change the same
// condition does see, so that it cannot pass by looking at nothing.
func Consistently(t testing.TB, duration time.Duration, cond func() string, opts ...Option) {
	t.Helper()
	o := options(opts)
	deadline := time.Now().Add(duration)
	for {
		if problem := cond(); problem != "" {
			t.Fatalf("within %s: %s", duration, problem)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(o.interval)
	}
}

// Option tunes Eventually and Consistently.
type Option func(*pollOptions)

type pollOptions struct{ interval time.Duration }

// Interval sets how often the condition is polled (100ms by default): the
// chaos suite polls thousands of objects and asks less often.
func Interval(d time.Duration) Option { return func(o *pollOptions) { o.interval = d } }

func options(opts []Option) pollOptions {
	o := pollOptions{interval: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
