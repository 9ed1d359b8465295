package rules

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The samples are documentation: they must pass the rules (the envtest
// suite in internal/webhook also sends them through a real apiserver).
func TestSamplesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "config", "samples", "spectrum_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found (err %v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var app v1alpha1.SpectrumApp
			if err := yaml.UnmarshalStrict(data, &app); err != nil {
				t.Fatal(err)
			}
			if vs := ValidateSpec(&app.Spec, field.NewPath("spec")); len(vs) > 0 {
				t.Errorf("sample is invalid: %v", vs.FieldErrors())
			}
		})
	}
}
