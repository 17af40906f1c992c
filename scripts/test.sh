#!/usr/bin/env bash
# The project's one quality gate, the same locally and in CI: set-up, ruff (lint + format), mypy (the contract
# strictly, the shared layer with mypy's defaults; config in pyproject.toml), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict a1_contract
.venv/bin/mypy a1_common
.venv/bin/python -m pytest -q "$@"
