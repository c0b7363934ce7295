package entitlements

import (
	"testing"
	"time"

	pb "github.com/entitlements-sidecar/entitlements-sidecar/clients/go/entitlementsv1"
)

func TestASilentStreamsAnswersAreStale(t *testing.T) {
	cache := newLocalCache(time.Second)
	live := newLiveness()
	cache.put(&pb.EntitlementSet{Subject: &pb.Subject{SubscriptionId: "s"}, Found: true}, live)
	check := Check{SubscriptionID: "s", Feature: "seats"}
	if r, ok := cache.lookup(check); !ok || r.Stale {
		t.Fatalf("just heard: %+v", r)
	}
	live.heardAt.Store(int64(time.Since(epoch) - 2*time.Second)) // as if two seconds went by without a word
	if r, _ := cache.lookup(check); !r.Stale {
		t.Fatalf("silent for 2 s, stale after 1 s: %+v", r)
	}
	live.heard()
	if r, _ := cache.lookup(check); r.Stale {
		t.Fatalf("heard again: %+v", r)
	}
}
