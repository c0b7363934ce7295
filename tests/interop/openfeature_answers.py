"""Every kind of answer through the real, unmodified OpenFeature Python SDK and providers (flagd in
RPC mode and OFREP); tests/integration/test_openfeature_answers.py drives it.

Evaluates tests/interop/answer_cases.json, prints {"phase": "fresh", ...}, waits for a line on
stdin (the test has made the sidecar's map stale), evaluates again and prints {"phase": "stale", ...}.
"""

import json
import sys
from pathlib import Path

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

CASES = json.loads((Path(__file__).parent / "answer_cases.json").read_text())


def evaluate(client):
    results = {}
    for case in CASES:
        attributes = dict(case["context"])
        context = EvaluationContext(targeting_key=attributes.pop("targetingKey", None), attributes=attributes)
        method = getattr(client, f"get_{case['type']}_details")
        details = method(case["key"], case["default"], context)
        results[case["case"]] = {
            "value": details.value,
            "reason": str(details.reason) if details.reason else None,
            "error": details.error_code.value if details.error_code else None,
        }
    return results


def main():
    grpc_host, grpc_port, ofrep_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    api.set_provider_and_wait(
        FlagdProvider(resolver_type=ResolverType.RPC, host=grpc_host, port=grpc_port, deadline_ms=2000), domain="flagd"
    )
    api.set_provider_and_wait(OFREPProvider(ofrep_url), domain="ofrep")
    clients = {"python-flagd": api.get_client("flagd"), "python-ofrep": api.get_client("ofrep")}
    for phase in ("fresh", "stale"):
        if phase == "stale":
            sys.stdin.readline()
        print(json.dumps({"phase": phase, **{name: evaluate(c) for name, c in clients.items()}}), flush=True)
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
