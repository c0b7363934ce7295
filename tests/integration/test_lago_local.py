"""`make lago-local`: Lago mode on one machine in one command, as the README's quick start shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.processes import REPO, run_cli
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def test_the_local_lago_mode_serves_two_readers_and_applies_a_change() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.lago_local"], cwd=REPO, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        text = "".join(lines)
        readers = re.findall(r"^reader-\d +gRPC (\S+),", text, re.MULTILINE)
        assert len(readers) == 2, text

        def seats_max(target: str) -> str:
            answer = run_cli("check", "--target", target, "--subscription", "sub_acme", "--feature", "seats",
                             "--privilege", "max", "--json")  # fmt: skip
            return answer.stdout

        assert '"int_value": 10' in seats_max(readers[0]) and '"int_value": 10' in seats_max(readers[1])
        process.stdin.write("set sub_acme seats max 25\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "webhooks delivered: [200]"
        for reader in readers:
            eventually(lambda: '"int_value": 25' in seats_max(reader), timeout=20, what=f"{reader} sees 25")  # noqa: B023
        rest = process.communicate(timeout=60)[0]  # end of input: it stops everything
        assert process.returncode == 0 and "stopped" in rest, rest
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # closes the pipes
