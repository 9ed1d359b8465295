package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// readiness is an app's conditions in kstatus's vocabulary, summarized from
// an outcome: whether the application matches the spec (Ready), and what
// comes next.
type readiness struct {
	ready           metav1.ConditionStatus
	reason, message string
	next            next
}

// next is what comes after a reconcile.
type next int

const (
	// nothingToDo: neither Reconciling nor Stalled.
	nothingToDo next = iota
	// retrying: Reconciling, the operator works on it by itself.
	retrying
	// needsAPerson: Stalled, until a person acts.
	needsAPerson
)

// nextFor is what follows a failure of class c.
func nextFor(c failure.Class) next {
	if c == failure.Retryable {
		return retrying
	}
	return needsAPerson
}

// setReadiness sets Ready, Reconciling and Stalled together, the one place
// that does: Ready as summarized, the condition next names with Ready's
// reason and message, and the other one removed.
func setReadiness(app *v1alpha1.SpectrumApp, r readiness) {
	setCondition(app, v1alpha1.ConditionReady, r.ready, r.reason, r.message)
	for _, progress := range []struct {
		next          next
		conditionType string
	}{{retrying, v1alpha1.ConditionReconciling}, {needsAPerson, v1alpha1.ConditionStalled}} {
		if progress.next == r.next {
			setCondition(app, progress.conditionType, metav1.ConditionTrue, r.reason, r.message)
		} else {
			meta.RemoveStatusCondition(&app.Status.Conditions, progress.conditionType)
		}
	}
}

func setCondition(app *v1alpha1.SpectrumApp, conditionType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{
		Type:               conditionType,
		Status:             status,
		Reason:             reason,
		Message:            truncate(message, maxConditionMessage),
		ObservedGeneration: app.Generation,
	})
}

// maxConditionMessage keeps messages well inside the apiserver's 32 KiB limit.
const maxConditionMessage = 4096

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
