"""Every row Lago returns is checked against what was asked for, never trusted because of a filter.

A listing filtered by `external_id`, a status filter that Lago drops when one value is unknown
(docs/lago-contract.md §4), a proxy that caches the wrong page: any of them would otherwise store one
subscription's row under another's name. A row that does not match is logged with both ids and
written nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Asked:
    """The filters of one request; empty fields were not asked for."""

    external_id: str | None = None
    statuses: Sequence[str] = ()
    external_customer_id: str | None = None

    def mismatch(self, row: Any) -> str | None:
        """Why `row` is not an answer to this request, or None when it is."""
        if not isinstance(row, dict):
            return "not a JSON object"
        if self.external_id is not None and row.get("external_id") != self.external_id:
            return f"external_id {_shown(row.get('external_id'))} (asked {self.external_id!r})"
        if self.statuses and row.get("status") not in self.statuses:
            return f"status {_shown(row.get('status'))} (asked {', '.join(self.statuses)})"
        customer = self.external_customer_id
        if customer is not None and row.get("external_customer_id") != customer:
            return f"external_customer_id {_shown(row.get('external_customer_id'))} (asked {customer!r})"
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
