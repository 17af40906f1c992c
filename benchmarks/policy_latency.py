"""Single-observation policy latency: the onnxruntime runner against torch eager, same policy, same run.

Usage (from the repo root, package installed)::

    python benchmarks/policy_latency.py [--bundle DIR] [--calls 5000] [--warmup 500] [--quick]

The policy is ``--bundle``, else the committed reference policy (``pretrain/reference_policy``) if it
exists, else a freshly initialized SAC policy with a [256, 256] ELU actor and non-trivial observation
statistics (which one is printed). It is exported with ``deploy.export`` (parity checked) to a
temporary file, then three callables get the same observations (a pool of 256 drawn around the
normalization statistics), one at a time, interleaved call by call with the order alternating, so
load from other processes hits all of them alike:

* ``runner``: ``PolicyRunner.act(obs)``, the robot's call (input checks included), one onnxruntime thread;
* ``torch_eager``: the same computation in torch (``ExportablePolicy``: normalization, SB3 actor,
  squash, rescale), ``torch.set_num_threads(1)``, ``inference_mode``, numpy in and out; it also
  computes the log-std head (one extra 12-output layer) that ``act`` skips;
* ``sb3_predict``: what a torch deployment would call without this project: ``ObsNorm.normalize`` +
  SB3 ``model.predict(deterministic=True)`` + ``to_raw`` (shown for reference; not the baseline).

Then ``runner`` and ``torch_eager`` are timed again each on its own (``*_alone_*`` keys): what a control
loop that runs only one of them sees (interleaving costs onnxruntime a few us of cache and allocator
state that torch disturbs).

Each call is timed with ``time.perf_counter_ns``; median and p99 over ``--calls`` calls after
``--warmup``. Targets: runner p99 < 100 us and ``ratio = torch_eager p99 / runner p99 >= 1.5``.
The last line printed is one JSON object::

    {"metric": "policy_latency_p99_us", "value": <runner p99>, "median_us": <runner median>,
     "baseline": <torch eager p99>, "ratio": baseline / value, "baseline_median_us": ..., "median_ratio": ...,
     "sb3_predict_p99_us": ..., "sb3_predict_median_us": ..., "policy": ..., "algo": ..., "calls": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch as th

from a1_common.bundle import BundlePolicy, ObsNorm, write_bundle
from a1_contract import get_contract
from deploy.export import export_policy
from deploy.policy_module import ExportablePolicy
from deploy.runner import PolicyRunner
from pretrain.config import resolve
from pretrain.factory import make_model
from pretrain.reference import REFERENCE_BUNDLE


def fresh_sac_bundle(dest: Path, net_arch: list[int]) -> Path:
    """A freshly initialized SAC bundle (nothing trained) with plausible observation statistics."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

    contract = get_contract()
    flags = {"algo": "sac", "offpolicy.net_arch": net_arch, "offpolicy.buffer_size": 1000, "device": "cpu"}
    cfg = resolve(None, {**flags, "env.num_envs": 1})
    env = A1MujocoVecEnv(1, contract, seed=0, num_threads=1)
    model = make_model(cfg, env)
    rng = np.random.default_rng(0)
    dim = contract.obs_dim
    obs_norm = ObsNorm(rng.normal(0, 0.3, dim), rng.uniform(0.05, 4.0, dim), 1e6, 10.0, 1e-8)
    env.close()
    return write_bundle(dest, model, obs_norm, contract, cfg.to_yaml(), algo="sac", with_replay_buffer=False)


def time_interleaved(fns: dict[str, Callable[[np.ndarray], object]], pool: np.ndarray, calls: int, warmup: int):
    """Per-callable latencies in microseconds, call by call, order reversed every other round."""
    names = list(fns)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(warmup + calls):
        obs = pool[i % len(pool)]
        for name in names if i % 2 == 0 else reversed(names):
            fn = fns[name]
            start = clock()
            fn(obs)
            elapsed = clock() - start
            if i >= warmup:
                samples[name].append(elapsed)
    return {name: np.asarray(values) / 1000.0 for name, values in samples.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", help="bundle to export and time (default: the reference policy, else fresh SAC)")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="tiny run for tests (200 calls, small parity check)")
    args = parser.parse_args(argv)
    calls, warmup = (200, 20) if args.quick else (args.calls, args.warmup)
    parity = {"sim_envs": 2, "sim_steps": 5, "num_random_obs": 64} if args.quick else {}
    th.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle:
            bundle, label = Path(args.bundle), f"bundle {args.bundle}"
        elif (REFERENCE_BUNDLE / "meta.json").is_file():
            bundle, label = REFERENCE_BUNDLE, "reference"
        else:
            bundle, label = fresh_sac_bundle(Path(tmp) / "fresh_sac", [256, 256]), "fresh_sac_256x256"
        report = export_policy(bundle, Path(tmp) / "policy.onnx", **parity)
        runner = PolicyRunner(report.path)
        policy = BundlePolicy(bundle)
        files = policy.files
        module = ExportablePolicy(policy.model.policy, files.algo, files.obs_norm, files.contract)
        bounds = files.contract.action_bounds

        def torch_eager(obs: np.ndarray) -> np.ndarray:
            with th.inference_mode():
                return module(th.from_numpy(obs[None]))[0][0].numpy()

        def sb3_predict(obs: np.ndarray) -> np.ndarray:
            return bounds.to_raw(policy(obs[None])[0])

        rng = np.random.default_rng(1)
        std = np.sqrt(files.obs_norm.var + files.obs_norm.epsilon)
        pool = (files.obs_norm.mean + std * rng.standard_normal((256, len(std)))).astype(np.float32)
        np.testing.assert_allclose(runner.act(pool[0]), torch_eager(pool[0]), atol=1e-5)
        fns = {"runner": runner.act, "torch_eager": torch_eager, "sb3_predict": sb3_predict}
        lat = time_interleaved(fns, pool, calls, warmup)
        alone = {
            name: time_interleaved({name: fns[name]}, pool, calls, warmup)[name]
            for name in fns
            if name != "sb3_predict"
        }

    stats = {name: (float(np.median(v)), float(np.percentile(v, 99))) for name, v in lat.items()}
    arch = [layer.out_features for layer in module.latent if isinstance(layer, th.nn.Linear)]
    print(f"policy: {label} ({files.algo}, actor {arch}), {calls} calls after {warmup} warm-up, 1 thread")
    print(f"{'':<12} {'median us':>10} {'p99 us':>10}")
    for name, (median, p99) in stats.items():
        print(f"{name:<12} {median:>10.1f} {p99:>10.1f}")
    alone_stats = {name: (float(np.median(v)), float(np.percentile(v, 99))) for name, v in alone.items()}
    for name, (median, p99) in alone_stats.items():
        print(f"{name + ' alone':<12} {median:>10.1f} {p99:>10.1f}")
    (median, p99), (base_median, base_p99) = stats["runner"], stats["torch_eager"]
    result = {
        "metric": "policy_latency_p99_us",
        "value": round(p99, 2),
        "median_us": round(median, 2),
        "baseline": round(base_p99, 2),
        "ratio": round(base_p99 / p99, 3),
        "baseline_median_us": round(base_median, 2),
        "median_ratio": round(base_median / median, 3),
        "sb3_predict_p99_us": round(stats["sb3_predict"][1], 2),
        "sb3_predict_median_us": round(stats["sb3_predict"][0], 2),
        "runner_alone_median_us": round(alone_stats["runner"][0], 2),
        "runner_alone_p99_us": round(alone_stats["runner"][1], 2),
        "torch_eager_alone_median_us": round(alone_stats["torch_eager"][0], 2),
        "torch_eager_alone_p99_us": round(alone_stats["torch_eager"][1], 2),
        "policy": label,
        "algo": files.algo,
        "actor_net_arch": arch,
        "calls": calls,
        "threads": 1,
        "onnxruntime": metadata.version("onnxruntime"),
        "torch": metadata.version("torch"),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
