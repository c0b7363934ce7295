package entitlements_test

import (
	"context"
	"log"

	entitlements "github.com/entitlements-sidecar/entitlements-sidecar/clients/go"
)

// A check over gRPC: may this subscription have 12 seats?
func ExampleClient_Check() {
	client, err := entitlements.New("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	result, err := client.Check(context.Background(), entitlements.Check{
		SubscriptionID: "sub_acme_main", Feature: "seats", Privilege: "max", Quantity: entitlements.Int64(12),
	})
	if err == nil && result.Allowed {
		log.Printf("allowed, limit %v", result.Value)
	}
}

// Watched subjects are answered in process, without an RPC, while the stream is up.
func ExampleClient_Watch() {
	client, err := entitlements.New("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Watch(context.Background(), entitlements.Subject{SubscriptionID: "sub_acme_main"})
	result, _ := client.Check(context.Background(), entitlements.Check{SubscriptionID: "sub_acme_main", Feature: "sso"})
	log.Printf("allowed %v (answered by %s)", result.Allowed, result.Source)
}
