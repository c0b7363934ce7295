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

// watched is a subject's state as one Watch call's stream sent it.
type watched struct {
	state *pb.EntitlementSet
	live  *liveness // of the Watch call whose stream sent it
}

// localCache holds the watched subjects' entitlements, per Watch call that names them (usually one), so
// that one call's broken stream drops only what it sent. Readers take a read lock and get a slice that is
// never written again: the watcher replaces a subject's slice whole, so an answer is never computed from
// half an update.
type localCache struct {
	mu         sync.RWMutex
	states     map[Subject][]watched
	staleAfter time.Duration
}

func newLocalCache(staleAfter time.Duration) *localCache {
	return &localCache{states: map[Subject][]watched{}, staleAfter: staleAfter}
}

func (l *localCache) lookup(check Check) (Result, bool) {
	if check.RequestedUsage != nil || !wellFormed(check) {
		return Result{}, false // usage is live, and a malformed check is the sidecar's to reject
	}
	l.mu.RLock()
	entries := l.states[check.Subject()]
	l.mu.RUnlock()
	if len(entries) == 0 {
		return Result{}, false
	}
	entry, silent := freshest(entries, l.staleAfter)
	result := DecideLocally(entry.state, check)
	if silent {
		result.Stale = true // the stream went silent: the sidecar may be missing changes, or be gone
	}
	return result, true
}

// freshest picks a live stream's state over a silent one's, then the latest version; and whether its
// stream is silent.
func freshest(entries []watched, staleAfter time.Duration) (watched, bool) {
	best, bestSilent := entries[0], entries[0].live.silentFor() > staleAfter
	for _, entry := range entries[1:] {
		silent := entry.live.silentFor() > staleAfter
		newer := entry.state.GetFreshness().GetVersion() > best.state.GetFreshness().GetVersion()
		if (bestSilent && !silent) || (silent == bestSilent && newer) {
			best, bestSilent = entry, silent
		}
	}
	return best, bestSilent
}

func (l *localCache) has(subject Subject) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.states[subject]) > 0
}

func (l *localCache) put(state *pb.EntitlementSet, live *liveness) {
	subject := Subject{SubscriptionID: state.GetSubject().GetSubscriptionId(), CustomerID: state.GetSubject().GetCustomerId()}
	l.mu.Lock()
	l.states[subject] = append(without(l.states[subject], live), watched{state, live})
	l.mu.Unlock()
}

// drop forgets what one Watch call's stream sent about its subjects.
func (l *localCache) drop(subjects []Subject, live *liveness) {
	l.mu.Lock()
	for _, subject := range subjects {
		if rest := without(l.states[subject], live); len(rest) > 0 {
			l.states[subject] = rest
		} else {
			delete(l.states, subject)
		}
	}
	l.mu.Unlock()
}

// without is a new slice of the entries another Watch call sent (readers may hold the old one).
func without(entries []watched, live *liveness) []watched {
	rest := make([]watched, 0, len(entries)+1)
	for _, entry := range entries {
		if entry.live != live {
			rest = append(rest, entry)
		}
	}
	return rest
}

// Watch keeps subjects' entitlements in process until ctx ends or the client closes: checks on them are
// answered locally from the stream's latest state. When the stream breaks, the states it sent are dropped
// (checks go to the sidecar, unless another Watch call's stream has the subject too) and the stream is
// reopened, with its initial states, after a short wait.
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
	live := newLiveness() // this call's: its streams' word, one stream at a time
	c.watches.Add(1)
	go func() {
		defer c.watches.Done()
		defer c.local.drop(subjects, live)
		for attempt := 0; ; attempt++ {
			if c.follow(ctx, request, live) {
				attempt = 0 // it delivered: the next break starts the backoff over
			}
			c.local.drop(subjects, live)
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
func (c *Client) follow(ctx context.Context, request *pb.WatchEntitlementsRequest, live *liveness) bool {
	stream, err := c.stub.WatchEntitlements(ctx, request)
	if err != nil {
		return false
	}
	delivered := false
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
