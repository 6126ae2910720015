#!/usr/bin/env bash
# Ledger check; in CI pass --base origin/<base branch> (needs full history: fetch-depth: 0).
# Thin wrapper: CI and a laptop run the same `serena-verify ledger check`; arguments pass through (--json, --output, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -x .venv/bin/serena-verify ]]; then serena_verify=.venv/bin/serena-verify; else serena_verify=serena-verify; fi
exec "$serena_verify" ledger check "$@"
