// Package entitlements is a Go client of entitlements-sidecar: typed Check, CheckMany and Get over one
// reused gRPC connection, with a deadline on every call, and Watch, which keeps the named subjects'
// entitlements in process (fed by WatchEntitlements) so checks on them are answered without an RPC, by
// the sidecar's rules (DecideLocally), until the stream breaks; then they go to the sidecar again while
// the stream reconnects.
package entitlements

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "github.com/entitlements-sidecar/entitlements-sidecar/clients/go/entitlementsv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// DefaultTimeout is each call's deadline when its context has none: the sidecar is next door.
const DefaultTimeout = 250 * time.Millisecond

// The sidecar restarts in about a second; grpc's default reconnect backoff grows to two minutes.
var reconnect = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}

// watchRetry is how long a broken Watch waits before reopening, capped at the last.
var watchRetry = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// Option configures New.
type Option func(*options)

type options struct {
	timeout   time.Duration
	heartbeat time.Duration
	dial      []grpc.DialOption
}

// DefaultHeartbeat is the interval of the heartbeats a Watch asks for. A watched subject's local answers
// are marked Stale once its stream has said nothing for SilentBeats intervals (a frozen sidecar, a cut
// network), until the stream speaks again.
const DefaultHeartbeat = 2 * time.Second

// SilentBeats is how many heartbeat intervals a stream may be silent before its answers are marked Stale.
const SilentBeats = 3

// WithTimeout sets the deadline of calls whose context has none.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithHeartbeat sets the heartbeat interval Watch asks for (the sidecar takes 0.5 s to 60 s).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithDialOptions adds grpc options, for example grpc.WithTransportCredentials for a sidecar serving TLS
// (the default is a plaintext connection, for a sidecar on 127.0.0.1).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// Client is safe for concurrent use; make one per sidecar and Close it when done.
type Client struct {
	conn      *grpc.ClientConn
	stub      pb.EntitlementServiceClient
	timeout   time.Duration
	heartbeat time.Duration
	local     *localCache

	mu      sync.Mutex
	cancels []context.CancelFunc
	watches sync.WaitGroup
}

// New connects to the sidecar at target ("127.0.0.1:50051"); the connection is made on first use.
func New(target string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, heartbeat: DefaultHeartbeat}
	for _, opt := range opts {
		opt(&o)
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: time.Second}),
		// Pings find a sidecar that stopped answering (it allows one every 5 s).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	}, o.dial...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn: conn, stub: pb.NewEntitlementServiceClient(conn), timeout: o.timeout,
		heartbeat: o.heartbeat, local: newLocalCache(SilentBeats * o.heartbeat),
	}, nil
}

// Close stops the watches and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	for _, cancel := range c.cancels {
		cancel()
	}
	c.cancels = nil
	c.mu.Unlock()
	c.watches.Wait()
	return c.conn.Close()
}

func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Check answers one check: in process for a watched subject, else from the sidecar.
func (c *Client) Check(ctx context.Context, check Check) (Result, error) {
	if result, ok := c.local.lookup(check); ok {
		return result, nil
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	response, err := c.stub.CheckEntitlement(ctx, request(check))
	if err != nil {
		return Result{}, err
	}
	return resultOf(response), nil
}

// CheckMany answers checks in order: watched subjects in process, the others in one CheckEntitlements
// call. A check the sidecar could not answer has its own Err; the error returned is the call's.
func (c *Client) CheckMany(ctx context.Context, checks []Check) ([]ItemResult, error) {
	results := make([]ItemResult, len(checks))
	var remote []int
	batch := &pb.CheckEntitlementsRequest{}
	for i, check := range checks {
		if result, ok := c.local.lookup(check); ok {
			results[i].Result = result
			continue
		}
		remote = append(remote, i)
		batch.Checks = append(batch.Checks, request(check))
	}
	if len(remote) == 0 {
		return results, nil
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	response, err := c.stub.CheckEntitlements(ctx, batch)
	if err != nil {
		return nil, err
	}
	if len(response.GetResults()) != len(remote) {
		return nil, errors.New("entitlements: the sidecar answered a different number of checks than were asked")
	}
	for j, item := range response.GetResults() {
		if failure := item.GetError(); failure != nil {
			results[remote[j]].Err = &ItemError{Code: failure.GetCode(), Message: failure.GetMessage(), Field: failure.GetField()}
		} else {
			results[remote[j]].Result = resultOf(item.GetResponse())
		}
	}
	return results, nil
}

// Get returns everything a subject is entitled to, from the sidecar.
func (c *Client) Get(ctx context.Context, subject Subject) (*pb.EntitlementSet, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	response, err := c.stub.GetEntitlements(ctx, &pb.GetEntitlementsRequest{
		SubscriptionId: subject.SubscriptionID, CustomerId: subject.CustomerID,
	})
	if err != nil {
		return nil, err
	}
	return response.GetEntitlements(), nil
}

// Watched reports whether checks on subject are answered in process now.
func (c *Client) Watched(subject Subject) bool { return c.local.has(subject) }

func request(check Check) *pb.CheckEntitlementRequest {
	return &pb.CheckEntitlementRequest{
		SubscriptionId: check.SubscriptionID, CustomerId: check.CustomerID, FeatureCode: check.Feature,
		PrivilegeCode: check.Privilege, Quantity: check.Quantity, Value: check.Value, RequestedUsage: check.RequestedUsage,
	}
}

func resultOf(response *pb.CheckEntitlementResponse) Result {
	var value any
	if response.GetValue() != nil {
		value = valueOf(response.GetValue())
	}
	freshness := response.GetFreshness()
	return Result{
		Allowed: response.GetAllowed(), Reason: reasonOf(response.GetReason()), Value: value,
		SubscriptionID: response.GetSubscriptionId(), Version: freshness.GetVersion(),
		Source: sourceOf(freshness.GetSource()), Stale: freshness.GetStale(),
	}
}

func sourceOf(source pb.Source) string {
	switch source {
	case pb.Source_SOURCE_MEMORY:
		return "memory"
	case pb.Source_SOURCE_REDIS:
		return "redis"
	case pb.Source_SOURCE_SOURCE:
		return "source"
	case pb.Source_SOURCE_FALLBACK:
		return "fallback"
	}
	return ""
}
