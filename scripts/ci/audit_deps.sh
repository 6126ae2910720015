#!/usr/bin/env bash
# pip-audit of requirements.lock: informational; exit 3 when the audit could not complete.
# Thin wrapper: CI and a laptop run the same `serena-verify audit-deps`; arguments pass through (--json, --output, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -x .venv/bin/serena-verify ]]; then serena_verify=.venv/bin/serena-verify; else serena_verify=serena-verify; fi
exec "$serena_verify" audit-deps "$@"
