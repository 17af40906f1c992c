"""Gradient steps per second of our SAC / TQC learners against SBX (JAX) and plain SB3 / sb3-contrib.

Usage (from the repo root, package installed; SBX from the optional extra ``pip install -e .[bench]``)::

    python benchmarks/learner_speed.py [--algos sac,tqc] [--nets 128x128,256x256,512x256x128]
        [--batches 256,1024] [--variants ours,ours_ref,same_maths,plain,sbx] [--threads 1] [--quick]

Every cell (algorithm preset x network x batch size) builds its models on the same small ``A1MujocoVecEnv``
(only its spaces matter) and gives them the same replay buffer contents (``--fill`` transitions collected
once with ``learn()`` and random actions, ``learning_starts`` above the fill so nothing trains meanwhile):

* ``ours``: ``pretrain.factory.make_model`` on the preset (read at runtime and printed) with the cell's network
  and batch size: ``DelayedSAC`` / ``DelayedTQC`` with the preset's policy delay and critics, fast update.
* ``ours_ref``: the same model with ``fast_update=False`` (the step-by-step loop the fast update replaced).
* ``same_maths``: ``ours`` with ``policy_delay=1`` and no critic LayerNorm: exactly SB3's update.
* ``plain``: ``stable_baselines3.SAC`` / ``sb3_contrib.TQC`` built with every setting of ``same_maths``
  (network, activation, optimizer and its kwargs, critics, quantiles, gamma, tau, entropy coefficient and
  target, learning rate, n-step): checked to have the same parameters and optimizer hyperparameters.
* ``sbx``: ``sbx.SAC`` / ``sbx.TQC`` with ``ours``'s settings where SBX has them (network, activation, critics,
  critic LayerNorm, quantiles and drop, policy delay, gamma, tau, learning rate, entropy coefficient and target,
  n-step, Adam/AdamW and weight decay); SBX has no ``target_update_interval`` (always 1, as the presets).
  Skipped, with a line saying so, when ``import sbx`` fails. With ``--threads 1`` XLA is held to one thread
  (``XLA_FLAGS``, set before JAX loads), as torch is; JAX runs on the CPU for ``--device cpu``.

Each model is warmed up (SBX: two calls of the timed length, so that its jitted loop is compiled for both
policy-delay phases), then ``model.train(gradient_steps=G, batch_size=B)`` is timed ``R`` times, the variants
interleaved (order reversed every other repetition) so that load from other processes spreads over all of
them; the median rate counts (``spread``: (max - min) / median of the calls, a gauge of the noise). Torch runs
on ``--threads`` intra-op threads (the training default is 1). The replay buffer is not wrapped in
``VecNormalize`` (training normalizes sampled observations: the same small cost for every variant).

The last line printed is one JSON object::

    {"metric": "grad_steps_per_s", "value": <ours, sac, 256x256, batch 256>, "baseline": <sbx, same cell>,
     "ratio": value / baseline, "ratio_sb3": value / plain, "value_of": "sac_256x256_256",
     "sac_256x256_256": ..., "sac_256x256_256_sbx": ..., "sac_256x256_256_sb3": ...,
     "sac_256x256_256_ours_ref": ..., "sac_256x256_256_same_maths": ..., "ratio_sac_256x256_256": ...,
     "ratio_sb3_sac_256x256_256": ..., <the same for every cell>, "sbx": "0.28.0" or null, "threads": 1, ...}

``baseline`` and the ``ratio_*`` against SBX are null when SBX is not installed or not run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch as th
from sb3_contrib import TQC
from sbx_baseline import load_sbx, sbx_like, shared_settings  # this folder, beside the script
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
from pretrain.config import TrainConfig, merge, preset
from pretrain.factory import make_model

PLAIN_CLASSES: dict[str, type[OffPolicyAlgorithm]] = {"sac": SAC, "tqc": TQC}
VARIANTS = ("ours", "ours_ref", "same_maths", "plain", "sbx")
KEY_SUFFIX = {"ours": "", "ours_ref": "_ours_ref", "same_maths": "_same_maths", "plain": "_sb3", "sbx": "_sbx"}
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
SHOWN_SETTINGS = (
    "policy_delay",
    "critic_layer_norm",
    "activation",
    "optimizer",
    "weight_decay",
    "learning_rate",
    "n_critics",
    "n_quantiles",
    "top_quantiles_to_drop_per_net",
    "gamma",
    "tau",
    "ent_coef",
    "target_entropy",
    "n_steps",
)


def variant_config(
    cfg: TrainConfig, variant: str, net: list[int], batch: int, buffer_size: int, device: str
) -> TrainConfig:
    offpolicy: dict[str, Any] = {"batch_size": batch, "buffer_size": buffer_size, "net_arch": list(net)}
    if variant == "same_maths":
        offpolicy.update(policy_delay=1, critic_layer_norm=False)
    return merge(cfg, {"device": device, "offpolicy": offpolicy})


def plain_like(algo: str, ref: OffPolicyAlgorithm, env: A1MujocoVecEnv) -> OffPolicyAlgorithm:
    """A plain SB3 / sb3-contrib model with every setting of ``ref`` (built by ``make_model``)."""
    extra: dict[str, Any] = {}
    if algo == "tqc":
        extra["top_quantiles_to_drop_per_net"] = ref.top_quantiles_to_drop_per_net
    return PLAIN_CLASSES[algo](
        "MlpPolicy",
        env,
        **shared_settings(ref),
        ent_coef=ref.ent_coef,
        target_update_interval=ref.target_update_interval,
        use_sde=ref.use_sde,
        policy_kwargs=dict(ref.policy_kwargs),
        device=ref.device,
        verbose=0,
        **extra,
    )


def check_same_setup(a: OffPolicyAlgorithm, b: OffPolicyAlgorithm) -> None:
    """Raise unless ``a`` and ``b`` have the same parameters (names, shapes) and optimizer settings."""
    shapes_a = {k: tuple(v.shape) for k, v in a.policy.state_dict().items()}
    shapes_b = {k: tuple(v.shape) for k, v in b.policy.state_dict().items()}
    if shapes_a != shapes_b:
        raise RuntimeError(f"networks differ:\n  {shapes_a}\n  {shapes_b}")
    for name in ("actor", "critic"):
        opt_a, opt_b = getattr(a, name).optimizer, getattr(b, name).optimizer
        if type(opt_a) is not type(opt_b) or opt_a.defaults != opt_b.defaults:
            raise RuntimeError(f"{name} optimizers differ: {opt_a} vs {opt_b}")
    for attr in ("gamma", "tau", "ent_coef", "target_entropy", "n_steps", "target_update_interval"):
        if getattr(a, attr) != getattr(b, attr):
            raise RuntimeError(f"{attr} differs: {getattr(a, attr)!r} vs {getattr(b, attr)!r}")


def fill_buffer(env: A1MujocoVecEnv, transitions: int, buffer_size: int, seed: int) -> Any:
    """A replay buffer of ``transitions`` random-action transitions collected by ``SAC.learn``."""
    filler = SAC(
        "MlpPolicy",
        env,
        buffer_size=buffer_size,
        learning_starts=transitions + env.num_envs,
        policy_kwargs={"net_arch": [8]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    filler.learn(total_timesteps=transitions)
    if filler._n_updates != 0:
        raise RuntimeError("the buffer filler trained")
    return filler.replay_buffer


def load_buffer(model: Any, source: Any) -> None:
    dst = model.replay_buffer
    for name in BUFFER_ARRAYS:
        getattr(dst, name)[...] = getattr(source, name)
    dst.pos, dst.full = source.pos, source.full


def timed_train(model: Any, steps: int, batch: int) -> float:
    start = time.perf_counter()
    model.train(gradient_steps=steps, batch_size=batch)
    return steps / (time.perf_counter() - start)


def measure(models: dict[str, Any], steps: int, reps: int, warmup: int, batch: int) -> dict[str, list[float]]:
    """Rates (gradient steps/s) of ``reps`` timed ``train()`` calls per model, interleaved."""
    for name, model in models.items():
        if name == "sbx":  # jit-compiled for the timed call length (and both policy-delay phases)
            for _ in range(2):
                model.train(gradient_steps=steps, batch_size=batch)
        else:
            model.train(gradient_steps=warmup, batch_size=batch)
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            rates[name].append(timed_train(models[name], steps, batch))
    return rates


def _csv(kind: type, text: str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def _net(text: str) -> list[int]:
    return [int(x) for x in text.lower().split("x") if x.strip()]


def net_name(net: list[int]) -> str:
    return "x".join(str(n) for n in net)


def build_models(
    variants: list[str],
    algo: str,
    cfg: TrainConfig,
    net: list[int],
    batch: int,
    buffer_size: int,
    device: str,
    env: A1MujocoVecEnv,
    sbx: Any,
) -> dict[str, Any]:
    """The cell's models, by variant (``ours`` first)."""
    models: dict[str, Any] = {}
    ours = make_model(variant_config(cfg, "ours", net, batch, buffer_size, device), env)
    if "ours" in variants:
        models["ours"] = ours
    if "ours_ref" in variants:
        ref = make_model(variant_config(cfg, "ours", net, batch, buffer_size, device), env)
        ref.fast_update = False
        models["ours_ref"] = ref
    if "same_maths" in variants or "plain" in variants:
        same = make_model(variant_config(cfg, "same_maths", net, batch, buffer_size, device), env)
        if "plain" in variants:
            models["plain"] = plain_like(algo, same, env)
            check_same_setup(same, models["plain"])
        if "same_maths" in variants:
            models["same_maths"] = same
    if "sbx" in variants and sbx is not None:
        models["sbx"] = sbx_like(sbx, algo, merge(cfg, {"offpolicy": {"net_arch": list(net)}}), ours, env)
    return models


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--algos", default="sac,tqc", help="comma-separated preset names (sac, tqc, sac_raffin_a1, ...)"
    )
    parser.add_argument(
        "--nets", default="128x128,256x256,512x256x128", help="comma-separated hidden layers, e.g. 256x256"
    )
    parser.add_argument("--batches", default="256,1024", help="comma-separated batch sizes")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--no-sbx", action="store_true", help="leave the SBX baseline out")
    parser.add_argument("--threads", type=int, default=1, help="torch (and XLA) intra-op threads")
    parser.add_argument("--steps", type=int, default=64, help="gradient steps per timed train() call")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per variant (median counts)")
    parser.add_argument("--warmup", type=int, default=8, help="gradient steps of the untimed warm-up call")
    parser.add_argument("--fill", type=int, default=20_000, help="transitions in the replay buffer")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for tests (2 steps, 2 reps, small buffer)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.reps, args.warmup, args.fill = 2, 2, 1, 2048
    algos, batches, variants = _csv(str, args.algos), _csv(int, args.batches), _csv(str, args.variants)
    nets = [_net(text) for text in _csv(str, args.nets)]
    if not algos or not batches or not nets or min(batches) < 1 or min(min(n) for n in nets) < 1:
        parser.error("--algos/--nets/--batches must be non-empty, sizes >= 1")
    if min(args.steps, args.reps, args.warmup, args.threads) < 1:
        parser.error("--steps/--reps/--warmup/--threads must be >= 1")
    if "ours" not in variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: a subset of {VARIANTS} that includes ours")
    configs = {name: preset(name) for name in algos}
    for name, cfg in configs.items():
        if cfg.algo not in PLAIN_CLASSES:
            parser.error(f"--algos: preset {name!r} is {cfg.algo}, not an off-policy algorithm")

    sbx, sbx_line = load_sbx("sbx" in variants and not args.no_sbx, args.threads, args.device)
    if sbx is None:
        variants = [v for v in variants if v != "sbx"]
    th.set_num_threads(args.threads)
    env = A1MujocoVecEnv(args.num_envs, seed=args.seed, num_threads=1)
    buffer_size = max(args.fill, args.num_envs) // args.num_envs * args.num_envs
    source = fill_buffer(env, buffer_size, buffer_size, args.seed)

    print(
        f"Learner speed: gradient steps/s on {args.device}, {args.threads} torch thread(s), replay buffer of "
        f"{source.size() * args.num_envs} transitions, median of {args.reps} interleaved calls of "
        f"{args.steps} steps after a warm-up"
    )
    print(sbx_line, flush=True)
    for name, cfg in configs.items():
        o = cfg.offpolicy
        shown = ", ".join(f"{k}={getattr(o, k)}" for k in SHOWN_SETTINGS if cfg.algo == "tqc" or "quantile" not in k)
        print(f"preset {name} ({cfg.algo}): {shown}")
    print(
        "variants: ours = the preset via make_model (fast update); ours_ref = ours with fast_update=False; "
        "same_maths = ours with policy_delay=1, no critic LayerNorm; plain = SB3 SAC / sb3-contrib TQC with "
        "same_maths's settings; sbx = SBX with ours's settings"
    )
    header = ("grad steps/s", 14), ("ms/step", 10), ("vs sbx", 9), ("vs plain", 10), ("spread", 9)
    print(
        f"{'algo':14s}{'net':>13s}{'batch':>7s}  {'variant':12s}"
        + "".join(f"{text:>{width}s}" for text, width in header)
    )

    result: dict[str, Any] = {}
    heads: list[str] = []
    for name, cfg in configs.items():
        for net in nets:
            for batch in batches:
                models = build_models(variants, cfg.algo, cfg, net, batch, buffer_size, args.device, env, sbx)
                for model in models.values():
                    load_buffer(model, source)
                    model.set_logger(configure(None, []))
                samples = measure(models, args.steps, args.reps, args.warmup, batch)
                rate = {v: statistics.median(r) for v, r in samples.items()}
                spread = {v: (max(r) - min(r)) / statistics.median(r) for v, r in samples.items()}
                for variant in rate:
                    vs_sbx = f"{rate[variant] / rate['sbx']:9.3f}" if "sbx" in rate else f"{'-':>9s}"
                    vs_plain = f"{rate[variant] / rate['plain']:10.3f}" if "plain" in rate else f"{'-':>10s}"
                    print(
                        f"{name:14s}{net_name(net):>13s}{batch:7d}  {variant:12s}{rate[variant]:14.1f}"
                        f"{1e3 / rate[variant]:10.2f}{vs_sbx}{vs_plain}{100 * spread[variant]:8.0f}%",
                        flush=True,
                    )
                key = f"{name}_{net_name(net)}_{batch}"
                heads.append(key)
                for variant in VARIANTS:
                    result[key + KEY_SUFFIX[variant]] = round(rate[variant], 1) if variant in rate else None
                result[f"ratio_{key}"] = round(rate["ours"] / rate["sbx"], 3) if "sbx" in rate else None
                result[f"ratio_sb3_{key}"] = round(rate["ours"] / rate["plain"], 3) if "plain" in rate else None
                del models
    env.close()

    head = "sac_256x256_256" if "sac_256x256_256" in heads else heads[0]
    summary = {
        "metric": "grad_steps_per_s",
        "value": result[head],
        "baseline": result[head + "_sbx"],
        "ratio": result[f"ratio_{head}"],
        "ratio_sb3": result[f"ratio_sb3_{head}"],
        "value_of": head,
        "baseline_of": "sbx" if sbx is not None else None,
    }
    result = {**summary, **result}
    result.update(
        sbx=getattr(sbx, "__version__", "?") if sbx is not None else None,
        threads=args.threads,
        device=args.device,
        steps=args.steps,
        reps=args.reps,
        **{f"policy_delay_{name}": cfg.offpolicy.policy_delay for name, cfg in configs.items()},
        **{f"critic_layer_norm_{name}": cfg.offpolicy.critic_layer_norm for name, cfg in configs.items()},
    )
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
