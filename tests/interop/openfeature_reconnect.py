"""Runs in the OpenFeature venv: the real flagd provider (RPC) across a sidecar restart. Prints
"ready" once connected; the test restarts the sidecar and only then changes seats:max, so the change
event can only arrive through the event stream the provider re-opened by itself. Prints the value
of seats:max after that event."""

import json
import sys
import threading

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    changed = threading.Event()

    def on_change(details):
        if "seats:max" in (details.flags_changed or []):
            changed.set()

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    provider = FlagdProvider(
        resolver_type=ResolverType.RPC,
        host=host,
        port=port,
        deadline_ms=2000,
        retry_backoff_ms=200,
        retry_backoff_max_ms=500,
    )
    api.set_provider_and_wait(provider)
    client = api.get_client()
    context = EvaluationContext(targeting_key="sub_acme_main")
    print(json.dumps({"phase": "ready", "max": client.get_integer_value("seats:max", -1, context)}), flush=True)
    if not changed.wait(60):
        print(json.dumps({"phase": "no_change_event"}), flush=True)
        return 1
    print(json.dumps({"phase": "changed", "max": client.get_integer_value("seats:max", -1, context)}), flush=True)
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
