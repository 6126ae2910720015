#!/usr/bin/env bash
# Coverage gate: coverage.xml against [tool.coverage.report] fail_under and the per-module floors.
# Thin wrapper: CI and a laptop run the same `serena-verify coverage`; arguments pass through (--json, --output, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -x .venv/bin/serena-verify ]]; then serena_verify=.venv/bin/serena-verify; else serena_verify=serena-verify; fi
exec "$serena_verify" coverage "$@"
