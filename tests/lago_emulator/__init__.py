"""A Lago emulator for tests, written from docs/lago-contract.md (not from the sidecar's code).

`state.py` is Lago's data model and write services, `api.py` the REST endpoints with Lago's shapes,
errors, pagination and rate limiting, `webhooks.py` the signed deliveries, `server.py` runs it on a
real socket in a background thread.
"""
