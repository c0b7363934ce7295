package entitlements

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxIDLength is the longest id or code the sidecar takes (Lago caps codes at 255 characters).
const maxIDLength = 255

// wellFormed says whether the sidecar would take the check rather than answer INVALID_ARGUMENT (its rules:
// src/entitlements_sidecar/domain/queries.py and ids.py). Only such a check is answered locally; a
// malformed one goes to the sidecar, whose error names the field.
func wellFormed(check Check) bool {
	if (check.SubscriptionID == "") == (check.CustomerID == "") {
		return false
	}
	if check.SubscriptionID != "" && (!validID(check.SubscriptionID) || strings.Contains(check.SubscriptionID, "/")) {
		return false
	}
	if check.CustomerID != "" && !validID(check.CustomerID) {
		return false
	}
	if !validID(check.Feature) || (check.Privilege != "" && !validID(check.Privilege)) {
		return false
	}
	if check.Quantity != nil && (check.Value != nil || *check.Quantity < 0) {
		return false
	}
	if check.Value != nil && utf8.RuneCountInString(*check.Value) > maxIDLength {
		return false
	}
	return (check.Quantity == nil && check.Value == nil) || check.Privilege != ""
}

func validID(id string) bool {
	if id == "" || utf8.RuneCountInString(id) > maxIDLength || id == "." || id == ".." {
		return false
	}
	if strings.TrimFunc(id, unicode.IsSpace) != id {
		return false
	}
	return strings.IndexFunc(id, unicode.IsControl) < 0
}
