package entitlements

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var seats = Check{SubscriptionID: "sub_acme_main", Feature: "seats", Privilege: "max"}

func connect(t *testing.T, s *sidecar) *Client {
	t.Helper()
	client, err := New(s.address, WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestChecksGetAndBatchesFromTheSidecar(t *testing.T) {
	s := startSidecar(t)
	client := connect(t, s)
	ctx := context.Background()

	result, err := client.Check(ctx, Check{SubscriptionID: "sub_acme_main", Feature: "seats", Privilege: "max", Quantity: Int64(26)})
	if err != nil {
		t.Fatal(err)
	}
	if result.Allowed || result.Reason != ReasonQuantityExceedsLimit || result.Value != int64(25) || result.Source != "memory" {
		t.Fatalf("got %+v", result)
	}

	results, err := client.CheckMany(ctx, []Check{seats, {SubscriptionID: "sub_acme_main", Feature: ""}, {CustomerID: "acme", Feature: "analytics_api"}})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Err != nil || results[0].Result.Value != int64(25) {
		t.Fatalf("first: %+v", results[0])
	}
	var invalid *ItemError
	if !errors.As(results[1].Err, &invalid) || invalid.Code != int32(codes.InvalidArgument) || invalid.Field == "" {
		t.Fatalf("second: %+v", results[1])
	}
	if !results[2].Result.Allowed || results[2].Result.SubscriptionID != "sub_acme_eu" {
		t.Fatalf("third: %+v", results[2])
	}

	set, err := client.Get(ctx, Subject{CustomerID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if !set.GetFound() || len(set.GetSubscriptions()) != 2 {
		t.Fatalf("got %v", set)
	}
	if _, err := client.Check(ctx, Check{SubscriptionID: "sub_acme_main", CustomerID: "acme", Feature: "seats"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("both subjects: %v", err)
	}
}

func TestAWatchedSubjectIsAnsweredLocallyFollowsChangesAndSurvivesARestart(t *testing.T) {
	s := startSidecar(t)
	client := connect(t, s)
	ctx := context.Background()
	client.Watch(ctx, Subject{SubscriptionID: "sub_acme_main"}, Subject{CustomerID: "acme"})
	eventually(t, 10*time.Second, "the first states", func() bool {
		return client.Watched(Subject{SubscriptionID: "sub_acme_main"}) && client.Watched(Subject{CustomerID: "acme"})
	})
	result, err := client.Check(ctx, seats)
	if err != nil || result.Source != "local" || result.Value != int64(25) {
		t.Fatalf("got %+v, %v", result, err)
	}
	negative := Check{SubscriptionID: "sub_acme_main", Feature: "seats", Privilege: "max", Quantity: Int64(-1)}
	if _, err := client.Check(ctx, negative); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a malformed check on a watched subject: %v", err) // the sidecar's to reject, not answered locally
	}
	usage, err := client.Check(ctx, Check{SubscriptionID: "sub_acme_main", Feature: "seats", RequestedUsage: Int64(1)})
	if err == nil && usage.Source == "local" {
		t.Fatal("a usage check was answered locally")
	}

	// Readers race the watcher on purpose (go test -race): answers are old or new, never torn.
	var readers sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r, err := client.Check(ctx, seats); err == nil && r.Value != int64(25) && r.Value != int64(30) {
					t.Errorf("a torn answer: %+v", r)
					return
				}
			}
		}()
	}
	s.edit("seats: {max: 25}", "seats: {max: 30}")
	eventually(t, 10*time.Second, "the change, locally", func() bool {
		r, err := client.Check(ctx, seats)
		return err == nil && r.Source == "local" && r.Value == int64(30)
	})
	close(stop)
	readers.Wait()

	// The sidecar dies: the local copy is dropped (no answer from a stream that may be missing changes),
	// checks fail over to RPC, which fails until the sidecar is back; then the watch resumes.
	s.kill()
	eventually(t, 10*time.Second, "the watch broken", func() bool { return !client.Watched(Subject{SubscriptionID: "sub_acme_main"}) })
	if _, err := client.Check(ctx, seats); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("with the sidecar down: %v", err)
	}
	s.edit("seats: {max: 30}", "seats: {max: 35}")
	s.start()
	eventually(t, 20*time.Second, "the watch resumed with the new state", func() bool {
		r, err := client.Check(ctx, seats)
		return err == nil && r.Source == "local" && r.Value == int64(35)
	})
}

func TestClosingStopsTheWatches(t *testing.T) {
	s := startSidecar(t)
	client, err := New(s.address)
	if err != nil {
		t.Fatal(err)
	}
	client.Watch(context.Background(), Subject{SubscriptionID: "sub_acme_main"})
	eventually(t, 10*time.Second, "the first state", func() bool { return client.Watched(Subject{SubscriptionID: "sub_acme_main"}) })
	done := make(chan error, 1)
	go func() { done <- client.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if client.Watched(Subject{SubscriptionID: "sub_acme_main"}) {
		t.Fatal("a closed client still answers locally")
	}
}

func TestAFrozenSidecarCostsADeadlineNotAHang(t *testing.T) {
	s := startSidecar(t)
	client, err := New(s.address, WithTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	if _, err := client.Check(ctx, seats); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = client.Check(ctx, seats)
	waited := time.Since(began)
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	if status.Code(err) != codes.DeadlineExceeded || waited > 2*time.Second {
		t.Fatalf("against a frozen sidecar: %v after %s", err, waited)
	}
	eventually(t, 10*time.Second, "answers again once it runs", func() bool {
		r, err := client.Check(ctx, seats)
		return err == nil && r.Value == int64(25)
	})
}

func TestWatchedAnswersSayStaleWhileTheSidecarIsFrozen(t *testing.T) {
	s := startSidecar(t)
	client, err := New(s.address, WithHeartbeat(500*time.Millisecond)) // stale after 1.5 s of silence
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	subject := Subject{SubscriptionID: "sub_acme_main"}
	client.Watch(ctx, subject)
	eventually(t, 10*time.Second, "the watched state", func() bool { return client.Watched(subject) })
	local := func() Result {
		r, err := client.Check(ctx, seats)
		if err != nil || r.Source != "local" || r.Value != int64(25) {
			t.Fatalf("a watched check: %+v, %v", r, err)
		}
		return r
	}
	// Longer than the bound on a stream with nothing to say: the heartbeats keep the answers fresh.
	for until := time.Now().Add(2 * time.Second); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		if local().Stale {
			t.Fatal("a live, quiet stream's answer marked stale")
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	frozen := time.Now()
	eventually(t, 10*time.Second, "local answers marked stale", func() bool { return local().Stale })
	// The last beat came up to one interval before the freeze: stale no sooner than 1.5 s - 0.5 s after it.
	if waited := time.Since(frozen); waited < 750*time.Millisecond {
		t.Fatalf("marked stale %s after the freeze, before the stream could have been silent that long", waited)
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	eventually(t, 10*time.Second, "fresh again once it speaks", func() bool { return !local().Stale })
}
