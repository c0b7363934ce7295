"""An in-process stand-in for Lago's REST reads (the `LagoReader` port), for unit tests of the refresher
and the full sync. Shapes follow docs/lago-contract.md §1-§4: a subscription carries its resolved
entitlements (value, plan_value, override_value per privilege); a plan's entitlements carry values.
Integration tests use the HTTP emulator in tests/lago_emulator instead."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from entitlements_sidecar.domain.errors import EntitlementsError

Json = dict[str, Any]


def privilege(code: str, value: Any, override: Any = None, value_type: str = "integer") -> Json:
    return {"code": code, "value_type": value_type, "plan_value": value, "override_value": override,
            "value": value if override is None else override}  # fmt: skip


@dataclass
class FakeLago:
    plans: dict[str, list[Json]] = field(default_factory=dict)  # plan code -> its entitlements
    subscriptions: dict[str, Json] = field(default_factory=dict)  # external id -> the active row
    features: list[Json] = field(default_factory=list)
    asked: Counter[str] = field(default_factory=Counter)  # requests by kind
    failing: EntitlementsError | None = None  # raised by every request while set

    def add_plan(self, code: str, seats: int) -> None:
        self.plans[code] = [{"code": "seats", "privileges": [{"code": "max", "value_type": "integer", "value": seats}]}]

    def subscribe(self, external_id: str, customer: str, plan: str, override: int | None = None) -> None:
        seats = self.plans[plan][0]["privileges"][0]["value"]
        self.subscriptions[external_id] = {
            "lago_id": f"row-{external_id}",
            "external_id": external_id,
            "external_customer_id": customer,
            "plan_code": plan,
            "status": "active",
            "started_at": "2026-01-01T00:00:00+00:00",
            "entitlements": [{"code": "seats", "privileges": [privilege("max", seats, override)]}],
        }

    def _ask(self, kind: str) -> None:
        self.asked[kind] += 1
        if self.failing is not None:
            raise self.failing

    async def get_subscription(self, external_id: str, status: str | None = None) -> Json | None:
        self._ask("subscription")
        return self.subscriptions.get(external_id)

    async def list_subscriptions(
        self,
        statuses: Sequence[str] = ("active", "pending"),
        external_id: str | None = None,
        external_customer_id: str | None = None,
        per_page: int = 100,
    ) -> AsyncIterator[Json]:
        self._ask("list")
        for row in list(self.subscriptions.values()):
            customer = row["external_customer_id"]
            if (
                row["status"] in statuses
                and external_id in (None, row["external_id"])
                and external_customer_id
                in (
                    None,
                    customer,
                )
            ):
                yield row

    async def get_plan_entitlements(self, plan_code: str) -> list[Json] | None:
        self._ask("plan")
        return self.plans.get(plan_code)

    async def list_features(self, per_page: int = 100) -> AsyncIterator[Json]:
        self._ask("features")
        for feature in self.features:
            yield feature

    async def subscription_page(
        self, statuses: Sequence[str], page: int, per_page: int = 100
    ) -> tuple[list[Json], int | None, int | None]:
        self._ask("list")
        rows = [row for row in self.subscriptions.values() if row["status"] in statuses]
        chunk = rows[(page - 1) * per_page : page * per_page]
        return chunk, (page + 1 if page * per_page < len(rows) else None), len(rows)
