package entitlements

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/entitlements-sidecar/entitlements-sidecar/clients/go/entitlementsv1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// epoch is the origin of the streams' heard times: time.Since reads the monotonic clock.
var epoch = time.Now()

// liveness is when a stream last said anything (a state or a heartbeat).
type liveness struct{ heardAt atomic.Int64 }

func newLiveness() *liveness {
	l := &liveness{}
	l.heard()
	return l
}

func (l *liveness) heard() { l.heardAt.Store(int64(time.Since(epoch))) }

func (l *liveness) silentFor() time.Duration {
	return time.Since(epoch) - time.Duration(l.heardAt.Load())
}

type watched struct {
	state *pb.EntitlementSet
	live  *liveness // of the stream that sent the state
}

// localCache holds the watched subjects' entitlements. Readers take a read lock; the watcher replaces a
// subject's state whole, so an answer is never computed from half an update.
type localCache struct {
	mu         sync.RWMutex
	states     map[Subject]watched
	staleAfter time.Duration
}

func newLocalCache(staleAfter time.Duration) *localCache {
	return &localCache{states: map[Subject]watched{}, staleAfter: staleAfter}
}

func (l *localCache) lookup(check Check) (Result, bool) {
	if check.RequestedUsage != nil || !wellFormed(check) {
		return Result{}, false // usage is live, and a malformed check is the sidecar's to reject
	}
	l.mu.RLock()
	entry, ok := l.states[check.Subject()]
	l.mu.RUnlock()
	if !ok {
		return Result{}, false
	}
	result := DecideLocally(entry.state, check)
	if entry.live.silentFor() > l.staleAfter {
		result.Stale = true // the stream went silent: the sidecar may be missing changes, or be gone
	}
	return result, true
}

func (l *localCache) has(subject Subject) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.states[subject]
	return ok
}

func (l *localCache) put(state *pb.EntitlementSet, live *liveness) {
	subject := Subject{SubscriptionID: state.GetSubject().GetSubscriptionId(), CustomerID: state.GetSubject().GetCustomerId()}
	l.mu.Lock()
	l.states[subject] = watched{state, live}
	l.mu.Unlock()
}

func (l *localCache) drop(subjects []Subject) {
	l.mu.Lock()
	for _, subject := range subjects {
		delete(l.states, subject)
	}
	l.mu.Unlock()
}

// Watch keeps subjects' entitlements in process until ctx ends or the client closes: checks on them are
// answered locally from the stream's latest state. When the stream breaks, their states are dropped
// (checks go to the sidecar) and the stream is reopened, with its initial states, after a short wait.
// Watch returns at once; Watched says when a subject's first state has arrived. The stream carries
// heartbeats (WithHeartbeat): when it has said nothing for SilentBeats intervals, its subjects' answers
// are marked Stale until it speaks again.
func (c *Client) Watch(ctx context.Context, subjects ...Subject) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancels = append(c.cancels, cancel)
	c.mu.Unlock()
	request := &pb.WatchEntitlementsRequest{HeartbeatInterval: durationpb.New(c.heartbeat)}
	for _, s := range subjects {
		request.Subjects = append(request.Subjects, &pb.Subject{SubscriptionId: s.SubscriptionID, CustomerId: s.CustomerID})
	}
	c.watches.Add(1)
	go func() {
		defer c.watches.Done()
		defer c.local.drop(subjects)
		for attempt := 0; ; attempt++ {
			if c.follow(ctx, request) {
				attempt = 0 // it delivered: the next break starts the backoff over
			}
			c.local.drop(subjects)
			wait := watchRetry[min(attempt, len(watchRetry)-1)]
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// follow reads one stream until it breaks; whether it delivered anything.
func (c *Client) follow(ctx context.Context, request *pb.WatchEntitlementsRequest) bool {
	stream, err := c.stub.WatchEntitlements(ctx, request)
	if err != nil {
		return false
	}
	delivered := false
	live := newLiveness()
	for {
		message, err := stream.Recv()
		if err != nil {
			return delivered
		}
		live.heard()
		if !message.GetHeartbeat() {
			c.local.put(message.GetEntitlements(), live)
		}
		delivered = true
	}
}
