"""The composition root (the only one): `parts.py` builds each role's parts from Settings; `root.py`
puts them together and starts and stops them in order."""

from entitlements_sidecar.app.root import App, run_full_sync, serve

__all__ = ["App", "run_full_sync", "serve"]
