"""Load generation and measurement shared by the benchmarks: h2load, server processes, CPU per call."""

from __future__ import annotations

import json
import math
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
SIDECAR_COUNTS = r"calls served .*?\b{rpc}=(\d+)"  # the sidecar's count line (logged on SIGUSR1)
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
    served: int = -1  # calls the server answered OK in the measured window (its own count)
    mix: str = ""  # "": one request repeated (h2load); else the name of a request mix (ghz, many requests)

    @property
    def counts_ok(self) -> bool:
        """Every call h2load finished was answered OK. h2load counts a non-OK grpc-status as done; the
        server counts only OK answers. Calls still in flight when h2load stops may be answered but not
        counted by h2load, so the server may be ahead by at most the calls in flight."""
        return self.calls <= self.served <= self.calls + self.in_flight


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
    """One h2load run of `seconds`, with no warm-up inside it (warm up with a run of its own), so that
    its "done" and the server's count cover the same calls."""
    clients = connections or (1 if in_flight == 1 else 4)
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cmd = [
        *pin(cpu),
        "h2load",
        "-D",
        str(max(1, round(seconds))),
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


GHZ = REPO / ".tools" / "ghz" / "bin" / "ghz"


def ghz(
    port: int, protoset: Path, data: Path, in_flight: int, seconds: float, cpu: int | None = 1
) -> tuple[int, float, float, float]:
    """One ghz run cycling through the requests in `data` (a JSON array, sent round-robin): (calls answered
    OK, rps, p50 µs, p99 µs). Calls cut off when ghz closes its connections at the end are not counted;
    any other non-OK answer is an error."""
    cmd = [
        *pin(cpu), str(GHZ), "--insecure", "--protoset", str(protoset),
        "--call", "entitlements.v1.EntitlementService/CheckEntitlement", "-D", str(data),
        "-c", str(in_flight), "--connections", str(1 if in_flight == 1 else 4), "--cpus", "1",
        "-z", f"{max(1, round(seconds))}s", "-O", "json", f"127.0.0.1:{port}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False).stdout
    report = json.loads(out)
    codes = dict(report.get("statusCodeDistribution") or {})
    ok = int(codes.pop("OK", 0))
    # When the duration ends, ghz cancels the calls in flight and closes its connections, which fails the calls
    # it was about to send (seen: Canceled 1 and Unavailable 64 at 64 in flight). Up to two per worker are
    # taken for that; a server failing calls fails many more in a run of seconds, and any other code counts.
    cut_off = codes.get("Canceled", 0) + codes.get("Unavailable", 0)
    if cut_off <= 2 * in_flight:
        codes.pop("Canceled", None)
        codes.pop("Unavailable", None)
    if codes:
        print(f"ghz: non-OK answers {codes}: {report.get('errorDistribution')}")
        ok = -ok  # a negative count never matches the server's: the run fails its count check
    latency = {d["percentage"]: d["latency"] / 1000 for d in report.get("latencyDistribution") or []}
    return ok, float(report["rps"]), float(latency.get(50, "nan")), float(latency.get(99, "nan"))


def measure_mix(
    server: Server, protoset: Path, data: Path, mix: str, in_flight: int, seconds: float, load_cpu: int | None = 1
) -> Run:
    """Like `measure`, with ghz cycling through many different requests instead of h2load repeating one."""
    ghz(server.port, protoset, data, in_flight, 1, load_cpu)  # warm-up, not counted
    served_before = server.served("CheckEntitlement")
    before = server.cpu_seconds()
    calls, rps, p50, p99 = ghz(server.port, protoset, data, in_flight, seconds, load_cpu)
    used = server.cpu_seconds() - before
    served = server.served("CheckEntitlement") - served_before
    run = Run(server.name, "CheckEntitlement", in_flight, calls, rps, p50, p99, 1e6 * used / max(1, served), 1,
              served, mix)  # fmt: skip
    if not run.counts_ok:
        print(f"COUNT MISMATCH {server.name} {mix}/{in_flight}: ghz answered OK {calls}, server counted {served}")
    return run


def percentile(values: list[int] | list[float], q: float) -> float:
    """Nearest rank of sorted `values`: the smallest value with at least q of them at or below it (the p99
    of 100 values is the 99th, not the largest)."""
    if not values:
        return float("nan")
    return float(values[max(0, math.ceil(q * len(values)) - 1)])


class Server:
    """One server process (or several sharing a port: `add_worker`), answering CheckEntitlement."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        env: dict[str, str] | None = None,
        cpu: int | None = 0,
        count_pattern: str = r"served (\d+)",
    ) -> None:
        self.name, self.port, self.cpu, self.env = name, port, cpu, env
        self.count_pattern = count_pattern  # its count line; `{rpc}` is the method's name
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

    def served(self, rpc: str) -> int:
        """Calls of `rpc` answered OK so far, summed over the processes: each prints its count on SIGUSR1."""
        pattern = re.compile(self.count_pattern.replace("{rpc}", rpc))
        total = 0
        for process, log in zip(self.processes, self.logs, strict=True):
            total += signalled_count(process, log, pattern, self.name)
        return total

    def stop(self) -> list[str]:
        """SIGTERM every process; their logs (where each reports the calls it answered)."""
        self.channel.close()
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)
        return [log.read_text() for log in self.logs]


def signalled_count(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str], name: str) -> int:
    """The count a server prints on SIGUSR1 (the last match of `pattern`'s group in its log)."""
    seen = len(pattern.findall(log.read_text()))
    process.send_signal(signal.SIGUSR1)

    def printed() -> list[str] | None:
        found = pattern.findall(log.read_text())
        return found if len(found) > seen else None

    found = eventually(printed, timeout=10, what=f"{name} to print its count")
    assert found is not None  # eventually returns only a truthy value
    return int(found[-1])


def check_method(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:  # type: ignore[type-arg]
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
    log = tmp / "h2load.log"
    h2load(server.port, rpc, body, in_flight, 1, log, connections, load_cpu)  # warm-up, not counted
    served_before = server.served(rpc)
    before = server.cpu_seconds()
    calls, rps, latencies = h2load(server.port, rpc, body, in_flight, seconds, log, connections, load_cpu)
    used = server.cpu_seconds() - before
    served = server.served(rpc) - served_before
    run = Run(
        server.name,
        rpc,
        in_flight,
        calls,
        rps,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        1e6 * used / max(1, served),  # CPU over the measured window ÷ the calls counted in it
        checks,
        served,
    )
    if not run.counts_ok:
        print(f"COUNT MISMATCH {server.name} {rpc}/{in_flight}: h2load finished {calls}, server answered OK {served}")
    return run
