package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SpectrumAppSpec is the desired Cloudflare Spectrum application, plus the
// Kubernetes-side settings that say where and how to manage it.
//
// The Cloudflare fields mirror the Spectrum apps API
// (POST /zones/{zone_id}/spectrum/apps). The spec is the application's whole
// configuration: an optional field left unset means Cloudflare's default,
// so removing a field from the spec brings the application back to the
// default, and a change made outside Kubernetes, to any field, is undone.
//
// +kubebuilder:validation:XValidation:rule="has(self.zoneID) != has(self.zoneName)",message="set exactly one of zoneID and zoneName"
// +kubebuilder:validation:XValidation:rule="has(self.zoneID) == has(oldSelf.zoneID) && (!has(self.zoneID) || self.zoneID == oldSelf.zoneID)",message="zoneID is immutable; create a new SpectrumApp to use another zone",fieldPath=".zoneID"
// +kubebuilder:validation:XValidation:rule="has(self.zoneName) == has(oldSelf.zoneName) && (!has(self.zoneName) || self.zoneName == oldSelf.zoneName)",message="zoneName is immutable; create a new SpectrumApp to use another zone",fieldPath=".zoneName"
type SpectrumAppSpec struct {
	// ZoneID is the ID of the Cloudflare zone that owns the application's
	// hostname: 32 lowercase hexadecimal characters, shown on the zone's
	// Overview page in the dashboard. Set exactly one of zoneID and
	// zoneName. It cannot change: to move an application to another zone,
	// create a new SpectrumApp.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{32}$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	ZoneID string `json:"zoneID,omitempty"`

	// ZoneName is the name of the Cloudflare zone that owns the
	// application's hostname, such as "example.com": an alternative to
	// zoneID. The operator looks the ID up once per API token (Cloudflare's
	// GET /zones?name=) and records it in status.zoneID. It cannot change.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$`
	// +optional
	ZoneName string `json:"zoneName,omitempty"`

	// CredentialsRef names the Secret, in the SpectrumApp's own namespace, that
	// holds the Cloudflare API token (a token with Zone > Spectrum > Edit on the
	// zone). When omitted, the operator's default credentials are used, if the
	// cluster admin configured them.
	// +optional
	CredentialsRef *SecretKeyReference `json:"credentialsRef,omitempty"`

	// DeletionPolicy says what happens to the Cloudflare application when this
	// SpectrumApp is deleted: Delete (the default) removes it from Cloudflare;
	// Orphan leaves it running at Cloudflare, unmanaged.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Protocol is the edge port or port range Cloudflare listens on:
	// "tcp/PORT", "udp/PORT", a range such as "tcp/1000-2000", or a named
	// protocol of the Pro and Business plans: "ssh" (tcp/22), "rdp"
	// (tcp/3389) or "minecraft" (tcp/25565), which Cloudflare keeps as
	// written. Cloudflare field: protocol.
	// +kubebuilder:validation:Pattern=`^((tcp|udp)/[0-9]{1,5}(-[0-9]{1,5})?|[A-Za-z][A-Za-z-]{0,31})$`
	Protocol string `json:"protocol"`

	// DNS is the hostname clients connect to and how Cloudflare publishes it.
	// Cloudflare field: dns.
	DNS DNS `json:"dns"`

	// OriginDirect lists origin addresses as URIs: "tcp://IP:PORT",
	// "udp://IP:PORT" or a port range "tcp://IP:START-END". IPv6 addresses go
	// in brackets: "tcp://[2001:db8::1]:443". Several entries load-balance.
	// Set exactly one of originDirect and originDNS.
	// Cloudflare field: origin_direct.
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	// +optional
	OriginDirect []string `json:"originDirect,omitempty"`

	// OriginDNS points the application at an origin by DNS name instead of by
	// address. Set exactly one of originDirect and originDNS.
	// Cloudflare field: origin_dns.
	// +optional
	OriginDNS *OriginDNS `json:"originDNS,omitempty"`

	// OriginPort is the origin port, or a port range such as "3000-4000", used
	// with originDNS. Required unless originDNS.type is SRV (the SRV record
	// carries the port). A range must hold as many ports as the protocol's edge
	// range. Cloudflare also accepts and stores it beside originDirect, where
	// each address names its own port (admission warns). Cloudflare field:
	// origin_port.
	// +kubebuilder:validation:XIntOrString
	// +optional
	OriginPort *intstr.IntOrString `json:"originPort,omitempty"`

	// IPFirewall applies the zone's IP Access rules to this application
	// (TCP applications). Cloudflare field: ip_firewall.
	// +optional
	IPFirewall *bool `json:"ipFirewall,omitempty"`

	// ProxyProtocol sends the client's address to the origin: off, v1, v2, or
	// simple (UDP). Cloudflare field: proxy_protocol.
	// +kubebuilder:validation:Enum=off;v1;v2;simple
	// +optional
	ProxyProtocol string `json:"proxyProtocol,omitempty"`

	// TLS is how Cloudflare terminates and re-establishes TLS: off, flexible
	// (TLS to the client only), full (TLS to the origin, any certificate) or
	// strict (TLS to the origin with a valid certificate).
	// Cloudflare field: tls.
	// +kubebuilder:validation:Enum=off;flexible;full;strict
	// +optional
	TLS string `json:"tls,omitempty"`

	// TrafficType is how Cloudflare treats the traffic: direct (plain TCP/UDP
	// proxy, Cloudflare's default), http or https (HTTP features such as WAF
	// and caching apply). Cloudflare field: traffic_type.
	// +kubebuilder:validation:Enum=direct;http;https
	// +optional
	TrafficType string `json:"trafficType,omitempty"`

	// EdgeIPs chooses the edge addresses: dynamic (Cloudflare-assigned, used
	// with a CNAME dns.type) or static BYOIP addresses (with an ADDRESS
	// dns.type; needs the BYOIP entitlement). Cloudflare field: edge_ips.
	// +optional
	EdgeIPs *EdgeIPs `json:"edgeIPs,omitempty"`

	// ArgoSmartRouting routes traffic over Argo Smart Routing (TCP with
	// trafficType direct; UDP is beta). Needs the Argo entitlement.
	// Cloudflare field: argo_smart_routing.
	// +optional
	ArgoSmartRouting *bool `json:"argoSmartRouting,omitempty"`

	// VirtualNetworkID routes to a private origin through this Cloudflare
	// Tunnel virtual network (a UUID). Needs originDirect with exactly one
	// "tcp|udp://IP:PORT" address, no port range, and a route for that IP in
	// the network. Cloudflare field: virtual_network_id.
	// +optional
	VirtualNetworkID string `json:"virtualNetworkID,omitempty"`
}

// DNS is the application's hostname and how Cloudflare publishes it.
type DNS struct {
	// Type is CNAME (Cloudflare-assigned dynamic edge IPs) or ADDRESS (static
	// edge IPs, BYOIP). It cannot change once the application exists.
	// +kubebuilder:validation:Enum=CNAME;ADDRESS
	Type string `json:"type"`

	// Name is the fully qualified hostname of the application, inside the
	// zone, for example "ssh.example.com".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// OriginDNS is an origin reached by DNS name.
type OriginDNS struct {
	// Name is the origin's hostname, for example "origin.example.com".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// TTL is how many seconds Cloudflare caches the resolution of Name: at
	// least 600 (Cloudflare's published minimum). Omit it for Cloudflare's
	// default.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTL *int32 `json:"ttl,omitempty"`

	// Type is the record type resolved: "" (A and AAAA, the default), A,
	// AAAA, or SRV (the SRV record supplies the port, so originPort may be
	// omitted).
	// +kubebuilder:validation:Enum="";A;AAAA;SRV
	// +optional
	Type string `json:"type,omitempty"`
}

// EdgeIPs chooses the addresses Cloudflare's edge answers on.
type EdgeIPs struct {
	// Type is dynamic (Cloudflare assigns addresses; needs dns.type CNAME) or
	// static (your own BYOIP addresses; needs dns.type ADDRESS).
	// +kubebuilder:validation:Enum=dynamic;static
	Type string `json:"type"`

	// Connectivity, for dynamic edge IPs, is which address families are
	// assigned: all (the default), ipv4 or ipv6.
	// +kubebuilder:validation:Enum=all;ipv4;ipv6
	// +optional
	Connectivity string `json:"connectivity,omitempty"`

	// IPs, for static edge IPs, are the BYOIP addresses to answer on; they
	// must come from a prefix allocated to the account.
	// +kubebuilder:validation:items:MaxLength=45
	// +listType=atomic
	// +optional
	IPs []string `json:"ips,omitempty"`
}

// SecretKeyReference names a key of a Secret in the SpectrumApp's namespace.
// There is deliberately no namespace field: an application can only use
// credentials from its own namespace.
type SecretKeyReference struct {
	// Name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key is the key in the Secret's data that holds the API token.
	// +kubebuilder:default=apiToken
	// +kubebuilder:validation:MinLength=1
	// +optional
	Key string `json:"key,omitempty"`
}

// DeletionPolicy says what happens at Cloudflare when a SpectrumApp is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete removes the Cloudflare application.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the Cloudflare application in place.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// SpectrumAppStatus is what the operator last observed.
type SpectrumAppStatus struct {
	// ZoneID is the ID of the application's zone: spec.zoneID, or the zone
	// spec.zoneName names, as the operator found it.
	// +optional
	ZoneID string `json:"zoneID,omitempty"`

	// ApplicationID is the Cloudflare application's ID. It is recorded the
	// moment Cloudflare creates (or the operator adopts) the application.
	// +optional
	ApplicationID string `json:"applicationID,omitempty"`

	// PendingCreate is the create record as earlier operator versions kept
	// it. It is honoured as the create-pending annotation is, and cleared
	// once settled; the record is now that annotation (see CreateSettled).
	// +optional
	PendingCreate *metav1.Time `json:"pendingCreate,omitempty"`

	// CreateSettled is the time of the last create record (the
	// spectrum.cloudflare-operator.io/create-pending annotation, written
	// before a create is sent) whose outcome the operator knows: the
	// application's ID is recorded, or Cloudflare refused the create. A
	// create-pending annotation later than this one is a create that may
	// have been applied unseen: the operator looks for that application
	// before it creates another.
	// +optional
	CreateSettled *metav1.Time `json:"createSettled,omitempty"`

	// SyncedGeneration is the metadata.generation whose spec the Cloudflare
	// application last matched. A spec Cloudflare accepted is not held back
	// by an admission rule added in a later release of the operator.
	// +optional
	SyncedGeneration int64 `json:"syncedGeneration,omitempty"`

	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions follow the kstatus conventions: Ready is True when the
	// Cloudflare application matches the spec; Reconciling is True while work
	// or a retry is in progress; Stalled is True when only a person can
	// unblock it (the message says what to do). OriginsHealthy, apart from
	// them, says whether Cloudflare reaches the origins, from its analytics.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// CreatedOn is when Cloudflare created the application.
	// +optional
	CreatedOn *metav1.Time `json:"createdOn,omitempty"`

	// ModifiedOn is when Cloudflare last modified the application.
	// +optional
	ModifiedOn *metav1.Time `json:"modifiedOn,omitempty"`

	// EdgeIPs are the edge addresses Cloudflare reports for the application,
	// where it returns them.
	// +listType=atomic
	// +optional
	EdgeIPs []string `json:"edgeIPs,omitempty"`

	// Adopted is true when the operator found an existing Cloudflare
	// application with this hostname and protocol and took it over instead of
	// creating a duplicate.
	// +optional
	Adopted bool `json:"adopted,omitempty"`

	// ReconcilePolicy is the reconcile-policy the operator last acted on:
	// manage, observe or skip (see the
	// spectrum.cloudflare-operator.io/reconcile-policy annotation).
	// +optional
	ReconcilePolicy string `json:"reconcilePolicy,omitempty"`

	// Differences are the Cloudflare API fields in which the application
	// differs from the spec, as the observe policy found them; empty when it
	// matches, and under the manage policy (which corrects them).
	// +listType=atomic
	// +optional
	Differences []string `json:"differences,omitempty"`

	// LastHandledReconcileAt is the value of the
	// spectrum.cloudflare-operator.io/reconcile-requested-at annotation that
	// the operator last acted on.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// Traffic is the application's traffic as Cloudflare's Spectrum
	// analytics last reported it: the last minute's connections and bytes,
	// and the connects and origin errors behind the OriginsHealthy
	// condition. Absent until first read, and when the API token may not
	// read analytics.
	// +optional
	Traffic *Traffic `json:"traffic,omitempty"`
}

// SpectrumApp is a Cloudflare Spectrum application: a TCP or UDP proxy at
// Cloudflare's edge in front of your origin. The operator creates, updates
// and deletes it through the Cloudflare API and keeps it in sync.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sapp;sapps,categories=cloudflare
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.spec.dns.name`
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.spec.zoneName`
// +kubebuilder:printcolumn:name="Zone ID",type=string,priority=1,JSONPath=`.status.zoneID`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.status.reconcilePolicy`
// +kubebuilder:printcolumn:name="Differences",type=string,priority=1,JSONPath=`.status.differences`
// +kubebuilder:printcolumn:name="Connections",type=integer,priority=1,JSONPath=`.status.traffic.connections`
// +kubebuilder:printcolumn:name="Origins",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="OriginsHealthy")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SpectrumApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired Spectrum application.
	Spec SpectrumAppSpec `json:"spec"`

	// Status is what the operator last observed.
	// +optional
	Status SpectrumAppStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SpectrumAppList is a list of SpectrumApps.
type SpectrumAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpectrumApp `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpectrumApp{}, &SpectrumAppList{})
}
