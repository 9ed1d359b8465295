// Package v1alpha1 contains the SpectrumApp API: a Cloudflare Spectrum
// application (a TCP/UDP proxy at Cloudflare's edge) managed from Kubernetes.
//
// +kubebuilder:object:generate=true
// +groupName=spectrum.cloudflare-operator.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "spectrum.cloudflare-operator.io", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
