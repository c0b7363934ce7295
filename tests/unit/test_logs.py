"""Log lines as JSON objects, carrying the request id of the call they were written for."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from entitlements_sidecar import logs


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test-logs-{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_json_lines_carry_extras_and_each_tasks_own_request_id() -> None:
    logger, out = _capture(logs.JsonFormatter())

    async def call(given: str | None) -> str:
        rid = logs.new_request_id(given)
        await asyncio.sleep(0)  # let the other call run in between
        logger.info("answered", extra={"feature": "seats"})
        return rid

    first, second = await asyncio.gather(asyncio.create_task(call("abc")), asyncio.create_task(call(None)))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["request_id"] for line in lines} == {first, second}
    assert first == "abc" and len(second) == 16
    for line in lines:
        assert line["message"] == "answered" and line["feature"] == "seats" and line["level"] == "INFO"


def test_unusable_caller_ids_are_replaced() -> None:
    assert logs.new_request_id("x" * 500) != "x" * 500
    assert logs.new_request_id("bad\nid") != "bad\nid"
