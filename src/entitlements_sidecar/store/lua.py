"""Lua scripts by SHA, in pipelines, on one Redis or a Redis Cluster.

redis-py refuses `evalsha` in a cluster pipeline and loads its Script objects only into standalone ones;
a raw EVALSHA is routed by its first key on both. A node that does not know a script yet (new, restarted
or failed over) answers NOSCRIPT without running it, so exactly those calls are sent again with the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, TypeAlias

from redis.exceptions import NoScriptError

from entitlements_sidecar.store.redis_connection import RedisClient

Arg: TypeAlias = str | bytes | int


class LuaScript:
    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def call(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        # Every key a script touches is passed in KEYS and, in a cluster, hashes to one slot.
        return Command("EVALSHA", self.sha, len(keys), *keys, *args, script=self)


class Command:
    """One Redis command for `execute`; a script call knows its text for the NOSCRIPT retry."""

    __slots__ = ("args", "script")

    def __init__(self, *args: Arg, script: LuaScript | None = None) -> None:
        self.args = args
        self.script = script

    def with_text(self) -> tuple[Arg, ...]:
        assert self.script is not None
        return ("EVAL", self.script.text, *self.args[2:])


async def execute(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    """Run `commands` in one non-transactional pipeline (one per node in a cluster); raise the first error."""
    if not commands:
        return []
    replies = await _pipeline(client, [command.args for command in commands])
    unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError) and commands[i].script]
    if unknown:
        for i, reply in zip(unknown, await _pipeline(client, [commands[i].with_text() for i in unknown]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipeline(client: RedisClient, calls: Sequence[tuple[Arg, ...]]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for args in calls:
            pipe.execute_command(*args)
        return list(await pipe.execute(raise_on_error=False))
