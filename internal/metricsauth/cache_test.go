package metricsauth

import (
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestCachedAnswersExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[string, bool]()
	c.now = func() time.Time { return now }
	c.put("allowed", true, allowedTTL)
	c.put("denied", false, deniedTTL)

	now = now.Add(deniedTTL - time.Second)
	if v, ok := c.get("denied"); !ok || v {
		t.Fatalf("denied within its TTL: %v %v", v, ok)
	}
	now = now.Add(time.Second)
	if _, ok := c.get("denied"); ok {
		t.Fatal("a denial outlived its TTL")
	}
	if v, ok := c.get("allowed"); !ok || !v {
		t.Fatalf("allowed within its TTL: %v %v", v, ok)
	}
	now = now.Add(allowedTTL)
	if _, ok := c.get("allowed"); ok {
		t.Fatal("a grant outlived its TTL")
	}
}

func TestTheCacheStaysBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[int, bool]()
	c.now = func() time.Time { return now }
	for i := range maxCached {
		c.put(i, true, time.Duration(i%2+1)*time.Minute)
	}
	// Half have expired: they make room, the rest stay.
	now = now.Add(time.Minute)
	c.put(-1, true, time.Minute)
	if len(c.entries) != maxCached/2+1 {
		t.Fatalf("%d entries after dropping the expired, want %d", len(c.entries), maxCached/2+1)
	}
	if _, ok := c.get(1); !ok {
		t.Fatal("an unexpired entry was dropped while expired ones could go")
	}
	// A flood of live entries never grows it past the bound.
	for i := range 3 * maxCached {
		c.put(maxCached+i, true, time.Hour)
		if len(c.entries) > maxCached {
			t.Fatalf("%d entries, bound %d", len(c.entries), maxCached)
		}
	}
}

func TestAccessKeysTellIdentitiesApart(t *testing.T) {
	base := accessKey(userInfo("a", "", []string{"x", "y"}, nil), "get", "/metrics")
	for name, other := range map[string]string{
		"user":         accessKey(userInfo("b", "", []string{"x", "y"}, nil), "get", "/metrics"),
		"uid":          accessKey(userInfo("a", "1", []string{"x", "y"}, nil), "get", "/metrics"),
		"groups":       accessKey(userInfo("a", "", []string{"x"}, nil), "get", "/metrics"),
		"group split":  accessKey(userInfo("a", "", []string{"x|g1:y"}, nil), "get", "/metrics"),
		"extra":        accessKey(userInfo("a", "", []string{"x", "y"}, map[string][]string{"k": {"v"}}), "get", "/metrics"),
		"verb":         accessKey(userInfo("a", "", []string{"x", "y"}, nil), "post", "/metrics"),
		"path":         accessKey(userInfo("a", "", []string{"x", "y"}, nil), "get", "/metrics/extra"),
		"name in path": accessKey(userInfo("", "", []string{"x", "y"}, nil), "get", "a/metrics"),
	} {
		if other == base {
			t.Errorf("%s: same key %q", name, base)
		}
	}
	if reordered := accessKey(userInfo("a", "", []string{"y", "x"}, nil), "get", "/metrics"); reordered != base {
		t.Errorf("group order changed the key: %q vs %q", reordered, base)
	}
}

func userInfo(name, uid string, groups []string, extra map[string][]string) authenticationv1.UserInfo {
	u := authenticationv1.UserInfo{Username: name, UID: uid, Groups: groups}
	if extra != nil {
		u.Extra = map[string]authenticationv1.ExtraValue{}
		for k, v := range extra {
			u.Extra[k] = v
		}
	}
	return u
}
