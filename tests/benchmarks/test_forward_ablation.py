"""benchmarks/forward_ablation.py: every variant is a valid training config that changes what it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pretrain.train import parse

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "forward_ablation.py"


def load():
    spec = importlib.util.spec_from_file_location("forward_ablation", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["forward_ablation"] = module
    spec.loader.exec_module(module)
    return module


def test_every_variant_parses_and_differs_from_the_full_task():
    bench = load()
    full, _ = parse(["--preset", "sac", "--minutes", "1"])
    seen = set()
    for name, flags in bench.VARIANTS.items():
        config, _ = parse(["--preset", "sac", "--minutes", "1", *flags])
        assert (config == full) == (name == "full"), name
        seen.add(repr(config))
    assert len(seen) == len(bench.VARIANTS), "no two variants train the same thing"


def test_unknown_variants_and_bad_budgets_are_refused(capsys):
    bench = load()
    for argv in (["--variants", "full,nope"], ["--minutes", "0"], ["--minute", "3"]):
        with pytest.raises(SystemExit) as exc:
            bench.main(argv)
        assert exc.value.code == 2, argv
    assert bench.main(["--list"]) == 0 and "nominal_noise" in capsys.readouterr().out


def test_table_reports_speeds_along_each_forward_command():
    bench = load()
    cond = {"forward_0_5": 0.43, "lin_error_max": 0.44, "falls": 1, "saturated": 0.1,
            "speeds": {str([v, 0.0, 0.0]): v * 0.9 for v in (-1.0, -0.5, 0.25, 0.5, 1.0)}}  # fmt: skip
    text = bench.table({"nominal": {"timesteps": 2_072_384, "nominal": cond, "training": cond}})
    row = text.splitlines()[-1]
    assert row.startswith("| nominal | 2.07 M | +0.43 / +0.43 |") and "-0.90, -0.45, +0.23, +0.45, +0.90" in row
