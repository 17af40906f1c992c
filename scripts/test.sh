#!/usr/bin/env bash
# The project's one quality gate, the same locally and in CI: set-up, ruff (lint + format), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
