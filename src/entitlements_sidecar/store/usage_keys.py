"""Where usage lives in Redis. A subscription's counters, its transaction ids and the outbox shard its
events go to share one hash tag, `{u<shard>}`, so the one script that counts and queues touches a single
cluster slot; 16 shards spread the outbox over a cluster's nodes while the forwarder reads a fixed set.

- `{prefix}u:{u<n>}:<subscription>:<metric>:<period start ms>`: the period's counter, a hash: `n` the
  usage, `r` when Lago's count was last folded in (ms);
- `{prefix}ut:{u<n>}:<subscription>:<transaction id>`: the value a transaction recorded (for 7 days);
- `{prefix}uo:{u<n>}`: the outbox shard, a stream read by the forwarders' consumer group;
- `{prefix}ua:{u<n>}`: counters recently recorded to (a sorted set by time), which healing re-reads;
- `{prefix}uo:refused`: events Lago refused for good, with the reason (bounded).
"""

from __future__ import annotations

import zlib

from entitlements_sidecar.domain.usage import UsageKey

OUTBOX_SHARDS = 16


class UsageKeys:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    @staticmethod
    def shard_of(subscription_id: str) -> int:
        return zlib.crc32(subscription_id.encode()) % OUTBOX_SHARDS

    def counter(self, key: UsageKey) -> str:
        tag = self.shard_of(key.subscription_id)
        return f"{self._prefix}u:{{u{tag}}}:{key.subscription_id}:{key.metric_code}:{key.period_start_ms}"

    def transaction(self, subscription_id: str, transaction_id: str) -> str:
        return f"{self._prefix}ut:{{u{self.shard_of(subscription_id)}}}:{subscription_id}:{transaction_id}"

    def outbox(self, shard: int) -> str:
        return f"{self._prefix}uo:{{u{shard}}}"

    def active(self, shard: int) -> str:
        return f"{self._prefix}ua:{{u{shard}}}"

    def refused(self) -> str:
        return f"{self._prefix}uo:refused"
