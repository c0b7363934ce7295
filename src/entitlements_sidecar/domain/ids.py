"""What an id or code may look like, wherever it comes from (gRPC, OFREP, a webhook body).

Lago caps codes at 255 characters and routes a subscription's external id with `[^/]+`
(docs/lago-contract.md §0, §4), so a subscription id with a `/` can never be re-read from Lago, and a
path segment of `.` or `..` would name another endpoint. Control characters and surrounding
whitespace are never part of a real id; accepting them would only store or look up garbage.
"""

from __future__ import annotations

import enum
import unicodedata

MAX_ID_LENGTH = 255


class IdKind(enum.Enum):
    SUBSCRIPTION = "subscription"  # a subscription's external id: one path segment in Lago's routes
    CUSTOMER = "customer"  # a customer's external id (a query parameter when we ask Lago)
    CODE = "code"  # a feature, privilege or plan code


def id_problem(value: str, kind: IdKind) -> str | None:
    """Why `value` cannot be an id of this kind, or None when it can."""
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters ({len(value)})"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "contains a control character"
    if value in (".", ".."):
        return f"{value!r} is not an id"
    if kind is IdKind.SUBSCRIPTION and "/" in value:
        return "contains '/', which Lago cannot route to a subscription"
    return None
