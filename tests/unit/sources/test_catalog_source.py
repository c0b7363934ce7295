from __future__ import annotations

import os
from pathlib import Path

import pytest

from entitlements_sidecar.domain.errors import CatalogError
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.memory import MemoryStore


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


async def test_reload_picks_up_edits_and_keeps_last_valid(example_catalog: Path) -> None:
    source = CatalogSource(example_catalog, MemoryStore())
    source.load()
    assert source.reload_if_changed() is False
    text = example_catalog.read_text()
    example_catalog.write_text(text.replace("seats: {max: 25}", "seats: {max: 30}"))
    bump_mtime(example_catalog)
    assert source.reload_if_changed() is True
    sub = await source.fetch_subscription("sub_acme_main")
    assert sub is not None and sub.features["seats"].privileges["max"].value == 30

    example_catalog.write_text(text.replace("seats: {max: 25}", "seats: {max: lots}"))
    bump_mtime(example_catalog)
    assert source.reload_if_changed() is False
    assert source.last_error is not None and "expected an integer" in str(source.last_error)
    sub = await source.fetch_subscription("sub_acme_main")
    assert sub is not None and sub.features["seats"].privileges["max"].value == 30  # state kept


async def test_customer_lookup(example_catalog: Path) -> None:
    source = CatalogSource(example_catalog, MemoryStore())
    source.load()
    assert {s.external_id for s in await source.fetch_customer("acme")} == {"sub_acme_main", "sub_acme_eu"}
    assert await source.fetch_customer("nobody") == []
    assert await source.fetch_subscription("nope") is None


def test_first_load_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        CatalogSource(tmp_path / "missing.yaml", MemoryStore()).load()
