package spectrum

// CredentialsError says the operator has no usable API token for an app,
// found before any request is sent. It never holds the token.
type CredentialsError struct {
	// Reason is a stable CamelCase word: CredentialsNotConfigured,
	// CredentialsSecretNotFound or CredentialsKeyMissing.
	Reason string
	// Detail names the Secret and key concerned.
	Detail string
}

func (e *CredentialsError) Error() string { return e.Detail }

// Reasons of CredentialsError.
const (
	ReasonCredentialsNotConfigured  = "CredentialsNotConfigured"
	ReasonCredentialsSecretNotFound = "CredentialsSecretNotFound"
	ReasonCredentialsKeyMissing     = "CredentialsKeyMissing"
)

// credentialsEntry is the classification of a CredentialsError: a person
// must provide the token; the Secret is watched, so fixing it is enough.
func credentialsEntry(reason string) entry {
	resolution := "Create the Secret in the SpectrumApp's namespace with the API token under the key spec.credentialsRef.key (default apiToken); the operator retries as soon as it changes."
	if reason == ReasonCredentialsNotConfigured {
		resolution = "Set spec.credentialsRef to a Secret holding a Cloudflare API token, or start the operator with --default-credentials-secret."
	}
	return entry{class: NeedsHuman, reason: reason, resolution: resolution}
}
