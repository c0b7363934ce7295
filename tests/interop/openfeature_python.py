"""Runs in its own venv with the real, unmodified OpenFeature Python SDK and providers (flagd in RPC
mode, and OFREP) against a running sidecar; tests/integration/test_openfeature.py drives it.

Prints one JSON object per line: the evaluations, then (after the test changes the catalog) the
flag keys the flagd event stream named and the evaluations again.
"""

import json
import sys
import threading

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent

SUBJECTS = ["sub_acme_main", "sub_globex"]


def evaluate(client):
    results = {}
    for subject in SUBJECTS:
        context = EvaluationContext(targeting_key=subject)
        details = {
            "seats": client.get_boolean_details("seats", False, context),
            "seats:max": client.get_integer_details("seats:max", -1, context),
            "sso:provider": client.get_string_details("sso:provider", "none", context),
        }
        results[subject] = {k: {"value": d.value, "reason": d.reason, "error": _error(d)} for k, d in details.items()}
    globex, acme = EvaluationContext(targeting_key="sub_globex"), EvaluationContext(targeting_key="sub_acme_main")
    errors = {
        "not_found": client.get_integer_details("seats:nope", -1, globex),
        "type_mismatch": client.get_integer_details("sso:provider", -1, acme),
        "no_targeting_key": client.get_boolean_details("seats", False, EvaluationContext()),
        "customer": client.get_integer_details("seats:max", -1, EvaluationContext(attributes={"customerId": "acme"})),
    }
    results["errors"] = {k: {"value": d.value, "error": _error(d)} for k, d in errors.items()}
    return results


def _error(details):
    return details.error_code.value if details.error_code else None


def main():
    grpc_host, grpc_port, ofrep_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    changed = threading.Event()
    flags_changed = []

    def on_change(details: EventDetails) -> None:
        flags_changed.extend(details.flags_changed or [])
        changed.set()

    flagd = FlagdProvider(resolver_type=ResolverType.RPC, host=grpc_host, port=grpc_port, deadline_ms=2000)
    api.set_provider_and_wait(flagd, domain="flagd")
    api.set_provider_and_wait(OFREPProvider(ofrep_url), domain="ofrep")
    flagd_client, ofrep_client = api.get_client("flagd"), api.get_client("ofrep")
    flagd_client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    print(json.dumps({"phase": "before", "flagd": evaluate(flagd_client), "ofrep": evaluate(ofrep_client)}), flush=True)
    print(json.dumps({"phase": "waiting"}), flush=True)
    if not changed.wait(30):
        print(json.dumps({"phase": "no_change_event"}), flush=True)
        return 1
    print(json.dumps({"phase": "changed", "flags_changed": sorted(set(flags_changed))}), flush=True)
    print(json.dumps({"phase": "after", "flagd": evaluate(flagd_client), "ofrep": evaluate(ofrep_client)}), flush=True)
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
