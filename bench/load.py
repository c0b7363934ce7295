"""Load generation and measurement shared by the benchmarks: h2load, server processes, CPU per call."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.support.processes import REPO
from tests.support.wait import eventually

SERVICE = "/entitlements.v1.EntitlementService"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    server: str
    rpc: str
    in_flight: int
    calls: int
    rps: float
    p50_us: float
    p99_us: float
    cpu_us_per_call: float
    checks_per_call: int = 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, all threads


def frame(message: bytes, directory: Path, name: str) -> Path:
    path = directory / name
    path.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    return path


def pin(cpu: int | None) -> list[str]:
    """taskset prefix for CPU `cpu`; nothing when unpinned (None) or with fewer than two CPUs."""
    if cpu is None or not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def h2load(
    port: int,
    rpc: str,
    body: Path,
    in_flight: int,
    seconds: float,
    log: Path,
    connections: int | None = None,
    cpu: int | None = 1,
) -> tuple[int, float, list[int]]:
    clients = connections or (1 if in_flight == 1 else 4)
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cmd = [
        *pin(cpu),
        "h2load",
        "-D",
        str(max(1, round(seconds))),
        "--warm-up-time",
        "1",
        "-c",
        str(clients),
        "-m",
        str(max(1, in_flight // clients)),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-d",
        str(body),
        "--log-file",
        str(log),
        f"http://127.0.0.1:{port}{SERVICE}/{rpc}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    latencies = sorted(int(line.split()[2]) for line in log.read_text().splitlines() if line.strip())
    return done, rps, latencies


def percentile(values: list[int], q: float) -> float:
    return float(values[min(len(values) - 1, int(q * len(values)))]) if values else float("nan")


class Server:
    """One server process (or several sharing a port: `add_worker`), answering CheckEntitlement."""

    def __init__(
        self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None, cpu: int | None = 0
    ) -> None:
        self.name, self.port, self.cpu, self.env = name, port, cpu, env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self._spawn(cmd)
        probe = pb.CheckEntitlementRequest(subscription_id="sub_00001", feature_code="seats")

        def answers() -> bool:
            # A fresh channel per probe: one that failed while the server was starting keeps backing off.
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                return bool(check_method(channel)(probe, timeout=1).allowed)

        eventually(answers, timeout=30, what=f"{name} answering")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.probes = 1

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    def add_worker(self, cmd: list[str], ready: str) -> None:
        """Another process on the same port (SO_REUSEPORT); ready once its log says `ready`."""
        self._spawn(cmd)
        eventually(lambda: ready in self.logs[-1].read_text(), timeout=30, what=f"{self.name} worker ready")

    def _spawn(self, cmd: list[str]) -> None:
        log = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-", suffix=".log")[1])
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*pin(self.cpu), *cmd], stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO
            )
        self.processes.append(process)
        self.logs.append(log)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def stop(self) -> list[str]:
        """SIGTERM every process; their logs (where each reports the calls it answered)."""
        self.channel.close()
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)
        return [log.read_text() for log in self.logs]


def check_method(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"{SERVICE}/CheckEntitlement",
        pb.CheckEntitlementRequest.SerializeToString,
        pb.CheckEntitlementResponse.FromString,
    )


def measure(
    server: Server,
    rpc: str,
    body: Path,
    in_flight: int,
    seconds: float,
    checks: int,
    tmp: Path,
    connections: int | None = None,
    load_cpu: int | None = 1,
) -> Run:
    before = server.cpu_seconds()
    log = tmp / "h2load.log"
    calls, rps, latencies = h2load(server.port, rpc, body, in_flight, seconds, log, connections, load_cpu)
    used = server.cpu_seconds() - before
    # CPU is measured over the warm-up too, so divide by every call the server answered in the run.
    warm = int(rps * 1.0)
    return Run(
        server.name,
        rpc,
        in_flight,
        calls,
        rps,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        1e6 * used / max(1, calls + warm),
        checks,
    )
