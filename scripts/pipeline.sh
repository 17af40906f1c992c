#!/usr/bin/env bash
# The main job: reference bundle -> ONNX -> emulated A1 with a dynamics gap over ROS 2 -> zero-shot return ->
# fine-tuning with the learner -> return after -> report (runs/pipeline/report.md, report.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/a1-pipeline "$@"
