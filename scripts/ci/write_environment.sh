#!/usr/bin/env bash
# Write ci_environment.txt (python, packages, OS, CPU, lock sha256, git sha, threads) to the evidence folder.
# Thin wrapper: CI and a laptop run the same `serena-verify env`; arguments pass through (--json, --output, …).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -x .venv/bin/serena-verify ]]; then serena_verify=.venv/bin/serena-verify; else serena_verify=serena-verify; fi
exec "$serena_verify" env "$@"
