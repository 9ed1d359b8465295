package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// FindSecrets looks for each secret (an API token) everywhere the operator
// writes text a person or a log pipeline can read: the manager's log over
// all its runs, every Event (events.k8s.io and core) in every namespace,
// and the status of every SpectrumApp. It returns one line per place a
// secret was found, naming the place but not the secret; none means no
// leak.
func (h *Harness) FindSecrets(ctx context.Context, secrets ...string) ([]string, error) {
	var found []string
	check := func(place string, text []byte) {
		for i, secret := range secrets {
			if secret != "" && bytes.Contains(text, []byte(secret)) {
				found = append(found, fmt.Sprintf("secret #%d in %s", i, place))
			}
		}
	}

	log, err := h.Manager.Log()
	if err != nil {
		return nil, fmt.Errorf("reading the manager log: %w", err)
	}
	check("the manager log "+h.Manager.LogPath(), log)

	var events eventsv1.EventList
	if err := h.Client.List(ctx, &events); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	for _, e := range events.Items {
		text, _ := json.Marshal(e)
		check("event "+e.Namespace+"/"+e.Name, text)
	}
	var coreEvents corev1.EventList
	if err := h.Client.List(ctx, &coreEvents); err != nil {
		return nil, fmt.Errorf("listing core events: %w", err)
	}
	for _, e := range coreEvents.Items {
		text, _ := json.Marshal(e)
		check("event "+e.Namespace+"/"+e.Name, text)
	}

	var apps v1alpha1.SpectrumAppList
	if err := h.Client.List(ctx, &apps); err != nil {
		return nil, fmt.Errorf("listing SpectrumApps: %w", err)
	}
	for _, app := range apps.Items {
		text, _ := json.Marshal(app.Status)
		check("the status of SpectrumApp "+app.Namespace+"/"+app.Name, text)
	}
	return found, nil
}
