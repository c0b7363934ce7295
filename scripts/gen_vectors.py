"""Render conformance/cases.json as conformance/vectors.json (run by `make gen`; `--check` by `make lint`).

Each case's state goes through the sidecar's own read path (tests/support/conformance.py), and its
subject comes out as the EntitlementSet a Watch stream sends, in proto JSON: what a client's local
evaluator reads. The clients (Python here, the SDKs under clients/) answer each vector's check from its
state and must give its `expect`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python scripts/gen_vectors.py` from anywhere: tests.support is the repo's

from tests.support.conformance import CASES, VECTORS, cases, vector  # noqa: E402


async def render() -> str:
    vectors = [await vector(case) for case in cases()]
    document = {
        "about": f"Generated from {CASES.relative_to(ROOT)} by scripts/gen_vectors.py (make gen): do not edit.",
        "vectors": vectors,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = asyncio.run(render())
    if "--check" in argv:
        if not VECTORS.exists() or VECTORS.read_text() != text:
            print(f"{VECTORS.relative_to(ROOT)} differs from {CASES.relative_to(ROOT)}: run make gen")
            return 1
        print("conformance vectors: up to date")
        return 0
    VECTORS.write_text(text)
    print(f"wrote {VECTORS.relative_to(ROOT)} ({len(json.loads(text)['vectors'])} vectors)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
