package entitlements

import (
	"strings"

	pb "github.com/entitlements-sidecar/entitlements-sidecar/clients/go/entitlementsv1"
)

// DecideLocally applies the sidecar's check rules to a watched subject's entitlements: the answer the
// sidecar would give for state (what WatchEntitlements sent) and check. The rules are the conformance
// vectors' (conformance/vectors.json, run by decide_test.go); a check with RequestedUsage is not
// answered here (usage is live), and Client asks the sidecar for it.
func DecideLocally(state *pb.EntitlementSet, check Check) Result {
	freshness := state.GetFreshness()
	answer := func(allowed bool, reason Reason, value any, subscription string) Result {
		return Result{
			Allowed: allowed, Reason: reason, Value: value, SubscriptionID: subscription,
			Version: freshness.GetVersion(), Source: "local", Stale: freshness.GetStale(),
		}
	}
	customer := check.CustomerID != ""
	own := "" // a subscription subject is named in every answer about it
	if !customer {
		own = check.SubscriptionID
	}
	if !state.GetFound() {
		if customer {
			return answer(false, ReasonCustomerNotFound, nil, "")
		}
		return answer(false, ReasonSubscriptionNotFound, nil, "")
	}
	active := false
	for _, info := range state.GetSubscriptions() {
		if info.GetStatus() == "active" {
			active = true
			break
		}
	}
	if !active {
		if customer {
			return answer(false, ReasonNoActiveSubscription, nil, "")
		}
		return answer(false, ReasonSubscriptionNotActive, nil, own)
	}
	var feature *pb.Feature
	for _, f := range state.GetFeatures() {
		if f.GetCode() == check.Feature {
			feature = f
			break
		}
	}
	if feature == nil {
		return answer(false, ReasonFeatureNotEntitled, nil, own)
	}
	if check.Privilege == "" {
		return answer(true, ReasonEntitled, nil, feature.GetSubscriptionId())
	}
	var privilege *pb.Privilege
	for _, p := range feature.GetPrivileges() {
		if p.GetCode() == check.Privilege {
			privilege = p
			break
		}
	}
	if privilege == nil {
		return answer(false, ReasonPrivilegeNotFound, nil, feature.GetSubscriptionId())
	}
	value, sub := valueOf(privilege.GetValue()), privilege.GetSubscriptionId()
	switch privilege.GetValueType() {
	case pb.ValueType_VALUE_TYPE_INTEGER:
		if check.Value != nil {
			return answer(false, ReasonRequestTypeMismatch, value, sub)
		}
		limit, isInt := value.(int64)
		if check.Quantity != nil && isInt && *check.Quantity > limit {
			return answer(false, ReasonQuantityExceedsLimit, value, sub)
		}
		return answer(true, ReasonEntitled, value, sub)
	case pb.ValueType_VALUE_TYPE_BOOLEAN:
		if check.Quantity != nil || check.Value != nil {
			return answer(false, ReasonRequestTypeMismatch, value, sub)
		}
		if value == true {
			return answer(true, ReasonEntitled, value, sub)
		}
		return answer(false, ReasonPrivilegeFalse, value, sub)
	}
	// string and select
	if check.Quantity != nil {
		return answer(false, ReasonRequestTypeMismatch, value, sub)
	}
	if check.Value != nil && value != *check.Value {
		return answer(false, ReasonValueMismatch, value, sub)
	}
	return answer(true, ReasonEntitled, value, sub)
}

// valueOf is a privilege value as Go sees it: bool, int64, string, or nil when unset.
func valueOf(message *pb.Value) any {
	switch kind := message.GetKind().(type) {
	case *pb.Value_BoolValue:
		return kind.BoolValue
	case *pb.Value_IntValue:
		return kind.IntValue
	case *pb.Value_StringValue:
		return kind.StringValue
	}
	return nil
}

// reasonOf names a wire reason the way the vectors and the Python client do: "quantity_exceeds_limit".
func reasonOf(reason pb.Reason) Reason {
	return Reason(strings.ToLower(strings.TrimPrefix(reason.String(), "REASON_")))
}
