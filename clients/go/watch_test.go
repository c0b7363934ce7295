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

func TestASubjectInTwoWatchesOutlivesOneOfTheirStreams(t *testing.T) {
	cache := newLocalCache(time.Second)
	first, second := newLiveness(), newLiveness()
	state := func(version int64, found bool) *pb.EntitlementSet {
		return &pb.EntitlementSet{
			Subject: &pb.Subject{SubscriptionId: "s"}, Found: found, Freshness: &pb.Freshness{Version: version},
		}
	}
	check := Check{SubscriptionID: "s", Feature: "seats"}
	cache.put(state(1, true), first)
	cache.put(state(2, false), second) // the newer state, from the other call's stream
	if r, ok := cache.lookup(check); !ok || r.Version != 2 || r.Reason != "subscription_not_found" {
		t.Fatalf("the newest state should answer: %+v", r)
	}
	second.heardAt.Store(int64(time.Since(epoch) - 2*time.Second)) // its stream went silent
	if r, _ := cache.lookup(check); r.Version != 1 || r.Stale {
		t.Fatalf("a live stream's state should answer before a silent one's: %+v", r)
	}
	cache.drop([]Subject{{SubscriptionID: "s"}}, first) // the live one's stream broke
	if r, ok := cache.lookup(check); !ok || r.Version != 2 || !r.Stale {
		t.Fatalf("the other stream's state, said to be stale: %+v, %v", r, ok)
	}
	cache.drop([]Subject{{SubscriptionID: "s"}}, second)
	if _, ok := cache.lookup(check); ok || cache.has(Subject{SubscriptionID: "s"}) {
		t.Fatal("a subject no stream has should go to the sidecar")
	}
}
