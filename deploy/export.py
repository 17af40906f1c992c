"""Export a checkpoint bundle's policy to one ONNX file with its contract inside, and prove it unchanged.

Usage::

    python -m deploy.export BUNDLE -o policy.onnx      # or: a1-export BUNDLE -o policy.onnx

Steps: load the bundle (hashes verified), wrap its actor in :class:`ExportablePolicy` (observation
normalization, squashing and the rescale to raw action units folded in), trace it with torch's
TorchScript exporter (opset 17, dynamic batch; the dynamo exporter would add ``onnxscript`` and seconds
per export for a plain MLP), attach the metadata of :mod:`deploy.metadata`, write it to a temporary file
beside ``-o`` and load that file in :class:`deploy.runner.PolicyRunner`, then check parity
(:mod:`deploy.parity`):

* torch module vs onnxruntime, every output, on random observations (around the normalization
  statistics, some far outside to exercise the clip) and on observations recorded from the embedded
  simulator while the policy drives it; batch of many and batch of one;
* the deterministic action vs SB3's own ``predict`` (``BundlePolicy``) mapped to raw units, which
  proves the folded graph is the policy that was trained.

Any error above ``tolerance`` (default 1e-5, max abs) raises :class:`ExportError` and leaves an existing
file at ``-o`` untouched; otherwise the temporary file is renamed into place (atomic on POSIX).
"""

from __future__ import annotations

import inspect
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch as th

from a1_common.atomic import replacing
from a1_common.bundle import BundlePolicy
from a1_common.cli import ArgumentParser, run_main
from deploy.metadata import INPUT_NAME, OUTPUT_NAMES, build_metadata
from deploy.parity import parity_errors
from deploy.policy_module import ExportablePolicy, ExportError
from deploy.runner import PolicyRunner

OPSET = 17  # onnxruntime >= 1.13 runs it; the TorchScript exporter supports it
PARITY_TOLERANCE = 1e-5

__all__ = ["OPSET", "PARITY_TOLERANCE", "ExportError", "ExportReport", "export_model", "export_policy", "main"]


@dataclass
class ExportReport:
    """Where the file went and the max abs errors measured before it was written."""

    path: Path
    algo: str
    num_random_obs: int
    num_sim_obs: int
    errors: dict[str, float] = field(default_factory=dict)
    """``"<obs set>/<output>"`` -> max abs error torch vs onnxruntime; ``"<obs set>/sb3_action"`` -> vs SB3 predict."""

    def describe(self) -> str:
        rows = [f"{key:<24} {value:.3e}" for key, value in self.errors.items()]
        return (
            f"{self.path}: {self.algo}, parity on {self.num_random_obs} random + {self.num_sim_obs} simulator "
            "observations (max abs error):\n  " + "\n  ".join(rows)
        )


def trace_to_onnx(module: ExportablePolicy, obs_dim: int) -> onnx.ModelProto:
    """The module as an ONNX graph, input ``obs`` with a dynamic batch axis."""
    buffer = io.BytesIO()
    # torch >= 2.9 defaults to the dynamo exporter (needs onnxscript); torch < 2.5 has no such argument.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(th.onnx.export).parameters else {}
    with warnings.catch_warnings(), th.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*")
        th.onnx.export(
            module,
            (th.zeros(2, obs_dim),),
            buffer,
            **legacy,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def export_policy(
    bundle: str | Path,
    out: str | Path,
    *,
    sim_envs: int = 8,
    sim_steps: int = 200,
    num_random_obs: int = 1024,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportReport:
    """Export ``bundle``'s actor to ``out`` (see module docs); raises :class:`ExportError` on any mismatch."""
    policy = BundlePolicy(bundle)
    files = policy.files
    return export_model(
        policy.model.policy,
        files.algo,
        files.obs_norm,
        policy.contract,
        files.meta,
        out,
        sim_envs=sim_envs,
        sim_steps=sim_steps,
        num_random_obs=num_random_obs,
        seed=seed,
        tolerance=tolerance,
        predict=policy,
    )


def export_model(
    sb3_policy: Any,
    algo: str,
    obs_norm: Any,
    contract: Any,
    source_meta: dict[str, Any],
    out: str | Path,
    *,
    sim_envs: int = 0,
    sim_steps: int = 0,
    num_random_obs: int = 256,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
    predict: Any = None,
    verbose: bool = True,
) -> ExportReport:
    """Export an in-memory SB3 policy (``model.policy``) to ``out``, parity-checked as :func:`export_policy`.

    The fine-tuning learner publishes its policies with this (random observations only: ``sim_envs=0``).
    ``predict`` (a :class:`~a1_common.bundle.BundlePolicy`) adds the check against SB3's own ``predict``.
    """
    out = Path(out)
    module = ExportablePolicy(sb3_policy, algo, obs_norm, contract)
    model = trace_to_onnx(module, contract.obs_dim)
    props = build_metadata(
        contract=contract,
        algo=algo,
        obs_norm=obs_norm,
        log_std_range=module.log_std_range,
        source_meta=source_meta,
    )
    onnx.helper.set_model_props(model, props)
    model.producer_name = "a1_sim2real.deploy.export"
    model.doc_string = f"policy of bundle {source_meta.get('bundle_id', 'unknown')}"
    onnx.checker.check_model(model)

    with replacing(out) as tmp:
        tmp.write_bytes(model.SerializeToString())
        runner = PolicyRunner(tmp, expected_contract=contract)
        errors, num_sim = parity_errors(module, runner, obs_norm, contract, num_random_obs=num_random_obs,
                                        sim_envs=sim_envs, sim_steps=sim_steps, seed=seed, predict=predict)  # fmt: skip
        report = ExportReport(out, algo, num_random_obs, num_sim, errors)
        if verbose:
            print(report.describe())
        bad = {key: value for key, value in report.errors.items() if not value <= tolerance}
        if bad:
            raise ExportError(f"parity check failed (tolerance {tolerance:g}, max abs error): {bad}")
    return report


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="a1-export", description="Export a bundle's policy to ONNX (module docs).")
    parser.add_argument("bundle", help="bundle or run directory")
    parser.add_argument("-o", "--out", default="policy.onnx", help="ONNX file to write (replaced atomically)")
    parser.add_argument("--sim-envs", type=int, default=8, help="robots simulated for the parity observations")
    parser.add_argument("--sim-steps", type=int, default=200, help="policy steps simulated for parity")
    parser.add_argument("--random-obs", type=int, default=1024, help="random observations for parity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE, help="max abs error allowed")
    args = parser.parse_args(argv)
    try:
        export_policy(
            args.bundle,
            args.out,
            sim_envs=args.sim_envs,
            sim_steps=args.sim_steps,
            num_random_obs=args.random_obs,
            seed=args.seed,
            tolerance=args.tolerance,
        )
    except ExportError as exc:
        print(f"export failed: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "a1-export")


if __name__ == "__main__":
    raise SystemExit(main())
