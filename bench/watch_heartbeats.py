"""What Watch heartbeats cost the sidecar (docs/adr/0014): its CPU with quiet Watch streams open, first
without heartbeats, then with them, and the CPU per heartbeat sent.

One sidecar (the example catalog, in memory) and `--streams` streams (10 per connection, the default
per-connection limit), each watching one subject that does not change, so that the only traffic is the
heartbeats. The sidecar's CPU (user + system, from /proc) is read over `--seconds` with the streams
quiet, for each case; the bench counts the heartbeats its readers received. `python -m
bench.watch_heartbeats [--streams N] [--interval S] [--seconds S]`; results in
bench/results/<date>-<commit>-heartbeats.json.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from bench.load import cpu_seconds
from bench.provenance import provenance, write_results
from entitlements_sidecar.client import CHANNEL_OPTIONS
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.support.processes import REPO, Sidecar, free_port, start_sidecar
from tests.support.wait import eventually

PER_CONNECTION = 10


class Streams:
    """`count` open Watch streams on `count / 10` connections, read by a thread each."""

    def __init__(self, address: str, count: int, interval: float | None) -> None:
        self.initial = 0
        self.beats = 0
        self._lock = threading.Lock()
        connections = count // PER_CONNECTION
        # A subchannel pool of its own per channel: else grpc would carry them all on one connection.
        options = (*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1))
        self._channels = [grpc.insecure_channel(address, options=options) for _ in range(connections)]
        request = pb.WatchEntitlementsRequest(subjects=[pb.Subject(subscription_id="sub_acme_main")])
        if interval is not None:
            request.heartbeat_interval.CopyFrom(Duration(seconds=int(interval), nanos=round(interval % 1 * 1e9)))
        self._calls = [
            pb_grpc.EntitlementServiceStub(channel).WatchEntitlements(request, timeout=600)
            for channel in self._channels
            for _ in range(PER_CONNECTION)
        ]
        self._threads = [threading.Thread(target=self._read, args=(call,), daemon=True) for call in self._calls]
        for thread in self._threads:
            thread.start()

    def _read(self, call: Any) -> None:
        try:
            for message in call:
                with self._lock:
                    if message.heartbeat:
                        self.beats += 1
                    else:
                        self.initial += 1
        except grpc.RpcError:
            pass  # cancelled at the end

    def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout=10)
        for channel in self._channels:
            channel.close()


def measure(sidecar: Sidecar, streams: int, interval: float | None, seconds: float) -> dict[str, float]:
    watch = Streams(sidecar.address, streams, interval)
    try:
        eventually(lambda: watch.initial == streams, timeout=30, what="every stream's initial state")
        time.sleep(1.0)  # past the first beats' start: measure the steady state
        beats_before, cpu_before, started = watch.beats, cpu_seconds(sidecar.process.pid), time.monotonic()
        time.sleep(seconds)
        cpu = cpu_seconds(sidecar.process.pid) - cpu_before
        elapsed = time.monotonic() - started
        beats = watch.beats - beats_before
    finally:
        watch.close()
    return {"cpu_share": cpu / elapsed, "beats_per_second": beats / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100, help="open streams, a multiple of 10 (limit 100)")
    parser.add_argument("--interval", type=float, default=0.5, help="heartbeat interval asked, in seconds")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window of each case")
    parser.add_argument("--dirty", action="store_true", help="measure a tree with uncommitted changes")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)
    tmp = Path(tempfile.mkdtemp(prefix="bench-heartbeats-"))
    catalog = tmp / "catalog.yaml"
    catalog.write_text((REPO / "examples" / "catalog.yaml").read_text())
    sidecar = start_sidecar(tmp, catalog, ["--http-address", f"127.0.0.1:{free_port()}", "--log-level", "warning"])
    try:
        quiet = measure(sidecar, args.streams, None, args.seconds)
        beating = measure(sidecar, args.streams, args.interval, args.seconds)
    finally:
        sidecar.terminate()
    per_beat_us = (beating["cpu_share"] - quiet["cpu_share"]) / beating["beats_per_second"] * 1e6
    results = {
        "streams": args.streams,
        "interval_seconds": args.interval,
        "seconds": args.seconds,
        "without_heartbeats": quiet,
        "with_heartbeats": beating,
        "cpu_us_per_heartbeat": round(per_beat_us, 1),
    }
    print(f"{args.streams} quiet streams: sidecar CPU {quiet['cpu_share']:.2%} of a core without heartbeats")
    print(
        f"with a heartbeat every {args.interval:g} s: {beating['cpu_share']:.2%} of a core, "
        f"{beating['beats_per_second']:.0f} heartbeats/s received, {per_beat_us:.1f} µs of sidecar CPU each"
    )
    print(write_results("heartbeats", origin, results))


if __name__ == "__main__":
    main()
