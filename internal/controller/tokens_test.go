package controller_test

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// perToken is what the manager holds per token and per Secret version.
type perToken struct {
	clients, zoneEntries, cachedTokens int
}

func perTokenState() perToken {
	zones, tokens := controller.PerTokenState(reconciler)
	return perToken{clients: connector.Tokens(), zoneEntries: zones, cachedTokens: tokens}
}

func (p *perToken) atLeast(o perToken) {
	p.clients = max(p.clients, o.clients)
	p.zoneEntries = max(p.zoneEntries, o.zoneEntries)
	p.cachedTokens = max(p.cachedTokens, o.cachedTokens)
}

// heapInUse is the live heap, after a collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A credentials Secret rewritten with 1,000 new tokens, the app that uses it
// reconciled with each: what the manager holds per token levels off at the
// tokens used within the idle timeout (or whose rate-limit window is still
// open) and falls back once they are not used, the token cache holds the
// Secret's current token only, and the heap does not grow with the number
// of tokens. Each token kept a client, its rate limiter and a zone listing
// for the manager's life before (issue 22, point 6).
func TestRotatedTokensAreForgotten(t *testing.T) {
	const rotations = 1000
	f := newFixture(t, "")
	newToken := func() string {
		token := "rotated-" + rand.Text()
		// One user's tokens, as rotating them in the dashboard makes.
		if err := sim.AddToken(spectrumtest.TokenConfig{Token: token, Account: enterprise, User: "rotating-user"}); err != nil {
			t.Fatal(err)
		}
		return token
	}
	token := newToken()
	f.createSecret("cloudflare", token)
	f.create(f.app("rotated", zoneRotate, "rotate.example"))
	f.waitForCondition("rotated", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")

	before := perTokenState()
	heapBefore := heapInUse()
	// A token's client is kept for the idle timeout after its last use, and
	// while the rate-limit window it spent in is open (which ends sooner
	// here); a second more for the sweep that forgets it.
	horizon := idleTimeout + rateLimitWindow + time.Second
	var rotatedAt []time.Time
	var highest perToken
	started := time.Now()
	for i := 1; i <= rotations; i++ {
		token = newToken()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			secret := &corev1.Secret{}
			if err := k8sClient.Get(f.ctx, client.ObjectKey{Namespace: f.namespace, Name: "cloudflare"}, secret); err != nil {
				return err
			}
			secret.Data[v1alpha1.DefaultCredentialsKey] = []byte(token)
			return k8sClient.Update(f.ctx, secret)
		})
		if err != nil {
			t.Fatalf("rotation %d: updating the Secret: %v", i, err)
		}
		rotatedAt = append(rotatedAt, time.Now())
		eventually(t, 20*time.Second, func() string {
			if calls.lastToken(zoneRotate) == token {
				return ""
			}
			return fmt.Sprintf("rotation %d: the app was not reconciled with the new token", i)
		}, testenv.Interval(5*time.Millisecond))

		now := perTokenState()
		highest.atLeast(now)
		recent := 0
		for _, at := range rotatedAt {
			if time.Since(at) <= horizon {
				recent++
			}
		}
		// Zone listings are looked through for forgotten tokens when they
		// have doubled.
		if now.clients > before.clients+recent || now.zoneEntries > before.zoneEntries+2*recent+16 {
			t.Fatalf("rotation %d: %d clients and %d zone entries held, %d and %d before, with %d tokens used in the last %s",
				i, now.clients, now.zoneEntries, before.clients, before.zoneEntries, recent, horizon)
		}
		if now.cachedTokens > before.cachedTokens {
			t.Fatalf("rotation %d: the token cache holds %d tokens, %d before: more than the current one per Secret", i, now.cachedTokens, before.cachedTokens)
		}
	}
	heapAfterAll := heapInUse()
	took := time.Since(started)
	after := perTokenState()
	f.waitForCondition("rotated", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")

	// Once the tokens are no longer used, only the current one stays.
	var settled perToken
	eventually(t, idleTimeout+rateLimitWindow+20*time.Second, func() string {
		settled = perTokenState()
		if settled.clients > before.clients || settled.zoneEntries > before.zoneEntries {
			return fmt.Sprintf("%d clients and %d zone entries held %s after the last rotation; want no more than the %d and %d before",
				settled.clients, settled.zoneEntries, time.Since(started)-took, before.clients, before.zoneEntries)
		}
		return ""
	})
	heapSettled := heapInUse()
	t.Logf("%d rotations in %s; per-token state before %+v, highest %+v, after the last rotation %+v, settled %+v; heap %.1f MiB before, %.1f MiB after the last rotation, %.1f MiB settled",
		rotations, took.Round(time.Second), before, highest, after, settled,
		mib(heapBefore), mib(heapAfterAll), mib(heapSettled))
	// What the tokens cost is given back: nothing is kept per token.
	const heapBound = 1 << 20
	if grew := int64(heapSettled) - int64(heapBefore); grew > heapBound {
		t.Errorf("the heap grew by %.1f MiB over %d rotations; want at most %.0f MiB", float64(grew)/(1<<20), rotations, mib(heapBound))
	}

	// A deleted Secret's token is dropped from the cache.
	f.deleteAndWait("rotated")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: "cloudflare"}}
	if err := k8sClient.Delete(f.ctx, secret); err != nil {
		t.Fatalf("deleting the Secret: %v", err)
	}
	eventually(t, 10*time.Second, func() string {
		if cached := perTokenState().cachedTokens; cached >= before.cachedTokens {
			return fmt.Sprintf("the token cache holds %d tokens after the Secret was deleted, %d before", cached, before.cachedTokens)
		}
		return ""
	})
}

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
