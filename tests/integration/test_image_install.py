"""The image's install, done the way the Dockerfile does it: build the wheels with
scripts/image-build-wheels.sh, install them into a fresh venv with scripts/image-install.sh (no
index), then run the installed console script away from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO, free_port
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def test_wheels_install_into_a_fresh_venv_and_serve(tmp_path: Path) -> None:
    # `python` in the scripts is the image's interpreter; here, this test's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONDONTWRITEBYTECODE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("ENTITLEMENTS_") and k != "PYTHONPATH"}
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    for script, args in (
        ("image-build-wheels.sh", [str(REPO), str(wheels)]),
        ("image-install.sh", [str(wheels), str(venv)]),
    ):
        subprocess.run(["sh", str(REPO / "scripts" / script), *args], env=env, check=True, timeout=300)
    assert any(w.name.startswith("entitlements_sidecar-") for w in wheels.iterdir())

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import entitlements_sidecar, grpc; print(entitlements_sidecar.__file__, grpc.__version__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=env,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(venv)) and where[1] == "1.78.2"  # installed, not the source tree; pinned grpcio

    grpc_address, http_port = f"127.0.0.1:{free_port()}", free_port()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text((REPO / "examples" / "catalog.yaml").read_text())
    server = subprocess.Popen(
        [str(venv / "bin" / "entitlements-sidecar"), "serve", "--grpc-address", grpc_address,
         "--http-address", f"127.0.0.1:{http_port}", "--catalog-path", str(catalog)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        eventually(
            lambda: httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=2).status_code == 200,
            timeout=30,
            what="the installed sidecar ready",
        )
        check = subprocess.run(
            [str(venv / "bin" / "entitlements-sidecar"), "check", "--target", grpc_address,
             "--subscription", "sub_acme_main", "--feature", "sso"],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30,
        )  # fmt: skip
        assert check.returncode == 0 and check.stdout.startswith("ALLOWED"), check.stdout + check.stderr
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
