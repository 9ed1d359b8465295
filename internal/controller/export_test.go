package controller

// PerTokenState is what r holds per token and per credentials Secret
// version: zone listings and zone-name lookups (per client, that is per
// token), and cached tokens.
func PerTokenState(r *SpectrumAppReconciler) (zoneEntries, tokens int) {
	return r.zones.entries(), r.secrets.len()
}
