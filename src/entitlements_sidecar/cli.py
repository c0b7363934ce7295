"""Command line: `serve` runs the sidecar; `check` and `get` ask a running one.

Exit codes for `check`: 0 allowed, 1 denied, 2 error (bad arguments, sidecar unreachable). Every
error is one line on stderr starting `error:`, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from entitlements_sidecar import logs
from entitlements_sidecar.client import CHANNEL_OPTIONS
from entitlements_sidecar.config import OPTIONS, load_settings
from entitlements_sidecar.domain.errors import EntitlementsError
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from entitlements_sidecar.domain.events import Progress
_log = logging.getLogger("entitlements_sidecar.sync")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more can be printed; do not let Python complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("error: output closed before it was all written", file=sys.stderr)
        return 2
    except OSError as exc:
        detail = exc.strerror or str(exc)
        print(f"error: {exc.filename}: {detail}" if exc.filename else f"error: {detail}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {o.field: getattr(args, o.field, None) for o in OPTIONS}
    try:
        settings = load_settings(overrides, serving=args.command in ("serve", "sync"))
    except EntitlementsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command in ("serve", "sync"):
        from entitlements_sidecar import app  # the server stack is not needed by client commands

        logs.configure(settings.logs.log_level, settings.logs.log_format)
        try:
            if args.command == "serve":
                asyncio.run(app.serve(settings))
                return 0
            report = asyncio.run(app.run_full_sync(settings, _progress(sys.stderr)))
        except EntitlementsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"synced {report.subscriptions} subscriptions in {report.seconds:.1f}s, {report.repaired} repaired")
        return 0
    target = _target(args.target or settings.grpc.address)
    tls = _tls(args)
    if args.command == "status":
        return _status(target, _target(args.http or settings.http.address), args.json, tls)
    try:
        with _channel(target, tls) as channel:
            stub = pb_grpc.EntitlementServiceStub(channel)
            if args.command == "check":
                return _check(stub, args)
            return _get(stub, args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entitlements-sidecar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sidecar")
    sync = commands.add_parser("sync", help="load every subscription from Lago into the shared Redis")
    sync.add_argument("--full", action="store_true", required=True, help="a full load (the only kind for now)")
    for command in (serve, sync):
        for option in OPTIONS:
            if not option.secret:
                command.add_argument(
                    option.flag,
                    dest=option.field,
                    metavar=option.field.upper(),
                    help=f"{option.help} (env {option.env}, default {option.default!r})",
                )
    status = commands.add_parser("status", help="gRPC health, /readyz and the freshness figures")
    client_commands = [status]
    status.add_argument("--target", help="sidecar gRPC address (default: ENTITLEMENTS_GRPC_ADDRESS)")
    status.add_argument("--http", help="sidecar HTTP address (default: ENTITLEMENTS_HTTP_ADDRESS)")
    status.add_argument("--json", action="store_true", help="print both answers as JSON")
    for name, text in (("check", "check one feature for a subject"), ("get", "list a subject's entitlements")):
        command = commands.add_parser(name, help=text)
        client_commands.append(command)
        command.add_argument("--target", help="sidecar address (default: ENTITLEMENTS_GRPC_ADDRESS)")
        subject = command.add_mutually_exclusive_group(required=True)
        subject.add_argument("--subscription", help="subscription external id")
        subject.add_argument("--customer", help="customer external id")
        command.add_argument("--json", action="store_true", help="print the answer as JSON")
        command.add_argument("--fully-consistent", action="store_true", help="read through to the source")
        command.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
        if name == "check":
            command.add_argument("--feature", required=True, help="feature code")
            command.add_argument("--privilege", help="privilege code")
            requested = command.add_mutually_exclusive_group()
            requested.add_argument("--quantity", type=_int64, help="requested quantity (integer privilege)")
            requested.add_argument("--value", help="requested value (string or select privilege)")
    for command in client_commands:
        command.add_argument("--ca-file", help="PEM CA that signed the sidecar's certificate: connect over TLS")
        command.add_argument("--cert-file", help="PEM client certificate, for a sidecar that requires mutual TLS")
        command.add_argument("--key-file", help="PEM key of --cert-file")
    return parser


Tls = tuple[str, str | None, str | None] | None  # paths: (CA, client certificate, client key), or plaintext


def _tls(args: argparse.Namespace) -> Tls:
    return (args.ca_file, args.cert_file, args.key_file) if args.ca_file else None


def _int64(text: str) -> int:
    value = int(text)  # argparse turns a ValueError into "error: argument --quantity: invalid ..." (exit 2)
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is out of range (a 64-bit integer)")
    return value


def _read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read {flag} {path}: {exc.strerror}") from None


def _channel(target: str, tls: Tls) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    ca, cert, key = (_read(p, flag) for p, flag in zip(tls, ("--ca-file", "--cert-file", "--key-file"), strict=True))
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


def _target(address: str) -> str:
    # Listen addresses and client targets share one syntax, except that 0.0.0.0 means "any".
    return address.replace("0.0.0.0:", "127.0.0.1:", 1)


def _consistency(args: argparse.Namespace) -> pb.Consistency | None:
    return pb.Consistency(fully_consistent=True) if args.fully_consistent else None


def _check(stub: pb_grpc.EntitlementServiceStub, args: argparse.Namespace) -> int:
    request = pb.CheckEntitlementRequest(
        subscription_id=args.subscription or "",
        customer_id=args.customer or "",
        feature_code=args.feature,
        privilege_code=args.privilege or "",
        consistency=_consistency(args),
    )
    if args.quantity is not None:
        request.quantity = args.quantity
    if args.value is not None:
        request.value = args.value
    answer = stub.CheckEntitlement(request, timeout=args.timeout)
    if args.json:
        print(json.dumps(as_json(answer), indent=2))
    else:
        verdict = "ALLOWED" if answer.allowed else "DENIED"
        subject = f"subscription {args.subscription}" if args.subscription else f"customer {args.customer}"
        what = args.feature + (f" / {args.privilege}" if args.privilege else "")
        print(f"{verdict}: {subject} -> {what}")
        print(f"  reason:    {pb.Reason.Name(answer.reason).removeprefix('REASON_').lower()}")
        if answer.HasField("value"):
            print(f"  value:     {_value(answer.value)} ({_type(answer.value_type)})")
        if answer.subscription_id:
            role = "granted by" if answer.allowed else "decided on"
            print(f"  {role} subscription {answer.subscription_id}")
        print(f"  freshness: {_freshness(answer.freshness)}")
    return 0 if answer.allowed else 1


def _get(stub: pb_grpc.EntitlementServiceStub, args: argparse.Namespace) -> int:
    request = pb.GetEntitlementsRequest(
        subscription_id=args.subscription or "", customer_id=args.customer or "", consistency=_consistency(args)
    )
    answer = stub.GetEntitlements(request, timeout=args.timeout).entitlements
    if args.json:
        print(json.dumps(as_json(answer), indent=2))
        return 0
    subject = f"subscription {args.subscription}" if args.subscription else f"customer {args.customer}"
    if not answer.found:
        print(f"{subject}: not found")
        return 0
    print(f"{subject} ({_freshness(answer.freshness)})")
    for sub in answer.subscriptions:
        print(f"  subscription {sub.subscription_id}: plan {sub.plan_code}, {sub.status}, version {sub.version}")
    if not answer.features:
        print("  no entitled features")
    for feature in answer.features:
        print(f"  {feature.code}" + (f"  ({feature.name})" if feature.name else ""))
        for privilege in feature.privileges:
            mark = "  [override]" if privilege.overridden else ""
            print(f"    {privilege.code} = {_value(privilege.value)} ({_type(privilege.value_type)}){mark}")
    return 0


def _value(value: pb.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    return repr(value.string_value)


def _type(value_type: int) -> str:
    return pb.ValueType.Name(value_type).removeprefix("VALUE_TYPE_").lower()  # type: ignore[arg-type]


_SOURCES = {
    pb.SOURCE_MEMORY: "the in-process map",
    pb.SOURCE_REDIS: "the shared map (Redis)",
    pb.SOURCE_SOURCE: "the source of truth, read just now",
    pb.SOURCE_FALLBACK: "the failure policy (the map could not answer)",
}


def _freshness(freshness: pb.Freshness) -> str:
    stale = ", STALE" if freshness.stale else ""
    origin = _SOURCES.get(freshness.source, "unknown")
    if freshness.source == pb.SOURCE_FALLBACK and freshness.version == 0:
        return f"answered by {origin}{stale}"
    if freshness.version == 0:
        return f"not in the map (nothing synced), answered by {origin}{stale}"
    synced = freshness.synced_at.ToJsonString()
    return f"version {freshness.version}, synced {synced}, answered from {origin}{stale}"


def as_json(message: Message) -> dict[str, Any]:
    """Every field, defaults included (`allowed: false` is an answer), with 64-bit integers as JSON
    numbers (protobuf's JSON mapping writes them as strings)."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _numbers(message.DESCRIPTOR, data)


def _numbers(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.message_type is not None and field.message_type.full_name.startswith("entitlements."):
            items = value if isinstance(value, list) else [value]
            for item in items:
                _numbers(field.message_type, item)
        elif field.cpp_type in (field.CPPTYPE_INT64, field.CPPTYPE_UINT64):
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
    return data


def _progress(stream: TextIO) -> Progress:
    """A bar on a terminal; elsewhere (a log collector, a file) one log line per tenth done."""
    if stream.isatty():

        def bar(done: int, total: int, width: int = 30) -> None:
            filled = width * done // total if total else width
            stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done == total:
                stream.write("\n")

        return bar
    said = [-1]

    def lines(done: int, total: int) -> None:
        tenth = 10 * done // total if total else 10
        if tenth != said[0]:
            said[0] = tenth
            _log.info("full sync progress", extra={"done": done, "total": total})

    return lines


def _status(target: str, http_address: str, as_json: bool, tls: Tls = None) -> int:
    """Exit 0 when gRPC health and /readyz both say ready, 1 when either does not, 2 when unreachable."""
    import httpx
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with _channel(target, tls) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            grpc_status = health_pb2.HealthCheckResponse.ServingStatus.Name(check.status)
    except grpc.RpcError as exc:
        grpc_status = f"unreachable ({exc.code().name})"
    try:
        readyz = _http_get(f"{http_address}/readyz", tls)
        ready: dict[str, Any] | None = readyz.json()
    except (httpx.HTTPError, ValueError) as exc:
        ready = None
        http_error = f"unreachable ({type(exc).__name__})"
    if as_json:
        print(json.dumps({"grpc_health": grpc_status, "readyz": ready}, indent=2))
    else:
        print(f"gRPC health ({target}): {grpc_status}")
        if ready is None:
            print(f"/readyz ({http_address}): {http_error}")
        else:
            print(f"/readyz ({http_address}): {'ready' if ready['ready'] else 'NOT READY'}")
            for name, result in ready["checks"].items():
                detail = result.get("detail", "")
                print(f"  {name}: {'ok' if result['ok'] else 'FAILING'}{f' ({detail})' if detail else ''}")
                if result.get("warning"):
                    print(f"    WARNING: {result['warning']}")
            lag = ready.get("sync_lag_seconds")
            shown = "unknown (never confirmed)" if lag is None else f"{lag:.1f} s"
            print(f"freshness: sync lag {shown}, budget {ready['staleness_budget_seconds']:g} s")
    if ready is None or grpc_status.startswith("unreachable"):
        return 2
    return 0 if ready["ready"] and grpc_status == "SERVING" else 1


def _http_get(address: str, tls: Tls) -> Any:
    """GET over HTTPS with the same CA (and client certificate) as gRPC when TLS is on."""
    import ssl

    import httpx

    if tls is None:
        return httpx.get(f"http://{address}", timeout=3)
    ca, cert, key = tls
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return httpx.get(f"https://{address}", timeout=3, verify=context)


if __name__ == "__main__":
    raise SystemExit(main())
