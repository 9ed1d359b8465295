package main

import (
	"testing"
	"testing/fstest"
)

func TestContainerMemoryLimit(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  int64
		found bool
	}{
		{"cgroup v2, own namespace", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 268435456, true},
		{"cgroup v2, host namespace", fstest.MapFS{
			"proc/self/cgroup": file("0::/kubepods/burstable/pod1/c1\n"),
			"sys/fs/cgroup/kubepods/burstable/pod1/c1/memory.max": file("134217728\n"),
			"sys/fs/cgroup/memory.max":                            file("max\n"),
		}, 134217728, true},
		{"cgroup v2 without a limit", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("max\n"),
		}, 0, false},
		{"cgroup v1", fstest.MapFS{
			"proc/self/cgroup": file("12:cpu,cpuacct:/kubepods/pod1/c1\n7:memory:/kubepods/pod1/c1\n"),
			"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes": file("201326592\n"),
		}, 201326592, true},
		{"cgroup v1, own namespace", fstest.MapFS{
			"proc/self/cgroup":                           file("7:memory:/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("201326592\n"),
		}, 201326592, true},
		{"cgroup v1 without a limit", fstest.MapFS{
			"proc/self/cgroup":                           file("7:memory:/\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 0, false},
		{"garbage in the limit file", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"sys/fs/cgroup/memory.max": file("lots\n"),
		}, 0, false},
		{"a path escaping the hierarchy", fstest.MapFS{
			"proc/self/cgroup":         file("0::/../../etc\n"),
			"sys/fs/cgroup/memory.max": file("1048576\n"),
		}, 1048576, true},
		{"no cgroups at all", fstest.MapFS{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := containerMemoryLimit(tc.files)
			if got != tc.want || found != tc.found {
				t.Fatalf("got %d, %v; want %d, %v", got, found, tc.want, tc.found)
			}
		})
	}
}
