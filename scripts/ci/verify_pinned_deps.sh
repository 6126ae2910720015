#!/usr/bin/env bash
# Every requirements.lock line pinned with ==, the installed environment matching it, pip check.
# Thin wrapper: CI and a laptop run the same `serena-verify deps`; arguments pass through (--json, --output, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -x .venv/bin/serena-verify ]]; then serena_verify=.venv/bin/serena-verify; else serena_verify=serena-verify; fi
exec "$serena_verify" deps "$@"
