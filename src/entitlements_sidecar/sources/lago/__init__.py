"""Everything that knows Lago's wire format (docs/lago-contract.md) lives in this package."""
