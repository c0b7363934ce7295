package entitlements

import "fmt"

// Reason says why a check was allowed or denied, as the sidecar names it (the proto's Reason without its
// prefix, in lower case).
type Reason string

// The reasons a check can give (protos/entitlements/v1/entitlements.proto, enum Reason).
const (
	ReasonEntitled              Reason = "entitled"
	ReasonFeatureNotEntitled    Reason = "feature_not_entitled"
	ReasonSubscriptionNotFound  Reason = "subscription_not_found"
	ReasonSubscriptionNotActive Reason = "subscription_not_active"
	ReasonPrivilegeNotFound     Reason = "privilege_not_found"
	ReasonQuantityExceedsLimit  Reason = "quantity_exceeds_limit"
	ReasonValueMismatch         Reason = "value_mismatch"
	ReasonPrivilegeFalse        Reason = "privilege_false"
	ReasonCustomerNotFound      Reason = "customer_not_found"
	ReasonNoActiveSubscription  Reason = "no_active_subscription"
	ReasonRequestTypeMismatch   Reason = "request_type_mismatch"
	ReasonFailurePolicy         Reason = "failure_policy"
	ReasonUsageOverQuota        Reason = "usage_over_quota"
	ReasonUsageOverAllowance    Reason = "usage_over_allowance"
)

// Subject names a subscription or a customer (Lago external ids): exactly one is set.
type Subject struct {
	SubscriptionID string
	CustomerID     string
}

func (s Subject) String() string {
	if s.CustomerID != "" {
		return "customer " + s.CustomerID
	}
	return "subscription " + s.SubscriptionID
}

// Check asks whether a subject may use a feature, optionally with one privilege, a quantity (integer
// privileges) or a value (string and select privileges).
type Check struct {
	SubscriptionID string
	CustomerID     string
	Feature        string
	Privilege      string
	Quantity       *int64
	Value          *string
	// RequestedUsage checks this many more units of a metered feature's usage; always asked of the sidecar.
	RequestedUsage *int64
}

// Subject is the subject the check is about.
func (c Check) Subject() Subject {
	return Subject{SubscriptionID: c.SubscriptionID, CustomerID: c.CustomerID}
}

// Result is a check's answer.
type Result struct {
	Allowed bool
	Reason  Reason
	// Value is the privilege's effective value when one was asked for and exists: bool, int64 or string.
	Value any
	// SubscriptionID is the subscription whose entitlements produced the answer.
	SubscriptionID string
	Version        int64
	// Source is "memory", "redis", "source" or "fallback" from the sidecar, "local" for a watched subject.
	Source string
	// Stale is true when the answer may be out of date.
	Stale bool
}

// ItemError is why one check of a CheckMany could not be answered.
type ItemError struct {
	Code    int32 // a google.rpc.Code: 3 INVALID_ARGUMENT, 14 UNAVAILABLE, ...
	Message string
	Field   string // the request field that was wrong, when there is one
}

func (e *ItemError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("code %d: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("code %d: %s", e.Code, e.Message)
}

// ItemResult is one answer of CheckMany: a Result, or an error for that check alone.
type ItemResult struct {
	Result Result
	Err    error
}

// Int64 is a pointer to v, for Check.Quantity and Check.RequestedUsage.
func Int64(v int64) *int64 { return &v }

// String is a pointer to v, for Check.Value.
func String(v string) *string { return &v }
