"""The milestone ledger: docs/serena.md, the per-milestone folders, and the computed audit score."""
