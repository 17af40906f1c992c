#!/usr/bin/env bash
# The project's one quality gate, the same locally and in CI: set-up, ruff (lint + format), mypy --strict (the
# contract and the shared layer, SB3 model classes included; config in pyproject.toml), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict a1_contract a1_common
.venv/bin/python -m pytest -q "$@"
