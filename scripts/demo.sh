#!/usr/bin/env bash
# The main job on the embedded default: a short MuJoCo A1 run that writes a video, pictures and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/a1-sim-demo "$@"
