#!/usr/bin/env bash
# Idempotent set-up: .venv with torch 2.13.0 (CPU build) installed first, then this project.
# Workstations with an NVIDIA GPU: see README ("On a GPU workstation").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first and pinned: an unpinned torch (or one pulled in by another package) is a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0"
  "${PIP[@]}" install "torch==2.13.0"
fi
# `ros`: ROS 2 Kilted rclpy + message wheels from PyPI (x86_64; robots with a ROS 2 install use EXTRAS=test);
# `bench`: SBX, the speed baseline of benchmarks/learner_speed.py (its test runs in CI, not skipped);
# `tune`: Optuna, cmaes and the PostgreSQL driver of `python -m pretrain tune`.
EXTRAS=${EXTRAS:-test,ros,bench,tune}
echo "[setup] installing a1-sim2real with extras: $EXTRAS"
log=$(mktemp)
if ! "${PIP[@]}" install -e ".[$EXTRAS]" >"$log" 2>&1; then
  grep -v "is ignored: it is neither" "$log" | tail -40
  echo "[setup] pip install failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
# The tune tests start a throwaway PostgreSQL server (initdb + pg_ctl in a temporary directory): the Debian package.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing the Debian postgresql package (server binaries for the tune tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "[setup] warning: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); the tune tests need them:" \
      "sudo apt-get install postgresql" >&2
  fi
fi
.venv/bin/python -c "import torch, mujoco, stable_baselines3, a1_contract; print('[setup] torch', torch.__version__, '| mujoco', mujoco.__version__, '| sb3', stable_baselines3.__version__)"
