package entitlements

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"
)

// BenchmarkLocalCheck: Check on a watched subject (its state as the sidecar sends it, from the conformance
// vectors), answered in process. bench/clients_bench.py runs it and judges it (<= 1 µs).
func BenchmarkLocalCheck(b *testing.B) {
	var state = vectors(b)[0]
	for _, v := range vectors(b) {
		if v.Name == "an integer override wins over the plan" {
			state = v
		}
	}
	parsed, check := state.parse(b)
	check.Quantity = Int64(20)
	client := &Client{local: newLocalCache(time.Hour)}
	client.local.put(parsed, newLiveness())
	ctx := context.Background()
	if result, err := client.Check(ctx, check); err != nil || result.Source != "local" || !result.Allowed {
		b.Fatalf("not a local answer: %+v %v", result, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, _ = client.Check(ctx, check)
	}
}

// BenchmarkRPCCheck: Check over gRPC against the sidecar at ENTITLEMENTS_BENCH_ADDRESS (bench/clients_bench.py
// starts one), one call at a time; reports the median latency as p50-µs.
func BenchmarkRPCCheck(b *testing.B) {
	address := os.Getenv("ENTITLEMENTS_BENCH_ADDRESS")
	if address == "" {
		b.Skip("ENTITLEMENTS_BENCH_ADDRESS is not set: bench/clients_bench.py sets it")
	}
	client, err := New(address, WithTimeout(2*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	check := Check{SubscriptionID: "sub_acme_main", Feature: "seats", Privilege: "max", Quantity: Int64(20)}
	for range 200 { // connection and warm-up
		if _, err := client.Check(ctx, check); err != nil {
			b.Fatal(err)
		}
	}
	var latencies []time.Duration
	b.ResetTimer()
	for b.Loop() {
		began := time.Now()
		if _, err := client.Check(ctx, check); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(began))
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	b.ReportMetric(float64(latencies[len(latencies)/2].Nanoseconds())/1000, "p50-µs")
}
