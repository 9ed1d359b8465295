package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// The chart carries copies of what controller-gen generates, because a chart
// cannot reach outside its directory. These tests fail when a copy drifts, so
// `make manifests` without `make chart-sync` cannot ship a chart whose CRD,
// permissions or webhook rules differ from the code's.

func TestChartCopiesMatchGenerated(t *testing.T) {
	generatedCRDs, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(generatedCRDs) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases (%v)", err)
	}
	chartCRDs, err := filepath.Glob(filepath.Join(chartDir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := baseNames(chartCRDs), baseNames(generatedCRDs); !slices.Equal(got, want) {
		t.Errorf("charts/spectrum-operator/crds holds %v, config/crd/bases %v; run `make chart-sync`", got, want)
	}

	copies := map[string]string{ // chart file -> generated file
		"files/manager-role.yaml":      "config/rbac/role.yaml",
		"files/webhook-manifests.yaml": "config/webhook/manifests.yaml",
	}
	for _, crd := range generatedCRDs {
		copies[filepath.Join("crds", filepath.Base(crd))] = filepath.Join("config", "crd", "bases", filepath.Base(crd))
	}
	for chartFile, generated := range copies {
		t.Run(chartFile, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(root, generated))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(chartDir, chartFile))
			if err != nil {
				t.Fatalf("%v; run `make chart-sync`", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("charts/spectrum-operator/%s differs from %s; run `make chart-sync`", chartFile, generated)
			}
		})
	}
}

func TestChartVersionIsMakefileVersion(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION \?= (\S+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("no `VERSION ?= ...` line in the Makefile")
	}
	version := string(m[1])

	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, "charts/spectrum-operator/Chart.yaml", &chart)
	if chart.Version != version || chart.AppVersion != version {
		t.Errorf("Chart.yaml has version %q and appVersion %q, the Makefile VERSION %q; run `make chart-sync`",
			chart.Version, chart.AppVersion, version)
	}
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	slices.Sort(out)
	return out
}
