"""Everything that knows Lago's wire format (shared/lago-contract.md) lives in this package."""
