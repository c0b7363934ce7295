package entitlements

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/entitlements-sidecar/entitlements-sidecar/clients/go/entitlementsv1"
	"google.golang.org/protobuf/encoding/protojson"
)

// The conformance vectors (conformance/vectors.json): each state as the sidecar sends it, a check, and
// the answer the sidecar gives; DecideLocally must give the same.
type vector struct {
	Name  string          `json:"name"`
	State json.RawMessage `json:"state"`
	Check struct {
		SubscriptionID string  `json:"subscription_id"`
		CustomerID     string  `json:"customer_id"`
		Feature        string  `json:"feature"`
		Privilege      string  `json:"privilege"`
		Quantity       *int64  `json:"quantity"`
		Value          *string `json:"value"`
	} `json:"check"`
	Expect map[string]any `json:"expect"`
}

func vectors(t testing.TB) []vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "conformance", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var document struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &document); err != nil {
		t.Fatal(err)
	}
	if len(document.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return document.Vectors
}

func (v vector) parse(t testing.TB) (*pb.EntitlementSet, Check) {
	t.Helper()
	state := &pb.EntitlementSet{}
	if err := protojson.Unmarshal(v.State, state); err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	c := v.Check
	return state, Check{SubscriptionID: c.SubscriptionID, CustomerID: c.CustomerID, Feature: c.Feature,
		Privilege: c.Privilege, Quantity: c.Quantity, Value: c.Value}
}

// asJSON is a result in the vectors' terms, compared as JSON so true is not 1 and 10 is not "10".
func asJSON(t testing.TB, answer map[string]any) string {
	t.Helper()
	encoded, err := json.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	return string(encoded)
}

func TestConformanceVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			state, check := v.parse(t)
			cache := newLocalCache(time.Hour) // the path a watched subject's check takes
			cache.put(state, newLiveness())
			result, local := cache.lookup(check)
			if _, rejected := v.Expect["error"]; rejected {
				if local {
					t.Errorf("answered locally (%+v); the sidecar rejects it (%v)", result, v.Expect)
				}
				return
			}
			if !local {
				t.Fatal("not answered locally")
			}
			got := map[string]any{"allowed": result.Allowed, "reason": string(result.Reason), "value": result.Value,
				"subscription_id": result.SubscriptionID, "stale": result.Stale}
			if asJSON(t, got) != asJSON(t, v.Expect) {
				t.Errorf("got %s, want %s", asJSON(t, got), asJSON(t, v.Expect))
			}
			if result.Source != "local" {
				t.Errorf("source %q, want local", result.Source)
			}
		})
	}
}
