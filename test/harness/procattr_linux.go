package harness

import "syscall"

// childProcAttr has the kernel kill the manager when the test process dies
// (a panic, a -timeout), so no manager outlives its test run.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
