"""Gradient steps per second of our SAC / TQC learners against plain SB3 ``SAC`` / sb3-contrib ``TQC``.

Usage (from the repo root, package installed)::

    python benchmarks/learner_speed.py [--algos sac,tqc] [--batches 256,1024] [--threads 1] [--quick]

For each algorithm (a preset name: ``sac``, ``tqc``, ``sac_raffin_a1``, ...) and batch size, three
models are built on the same small ``A1MujocoVecEnv`` (only its spaces matter) and given the same
replay buffer contents (``--fill`` transitions collected once with ``learn()`` and random actions,
``learning_starts`` above the fill so nothing trains meanwhile):

* ``ours``: ``pretrain.factory.make_model`` on the preset (read at runtime and printed), with the batch
  size overridden: ``DelayedSAC`` / ``DelayedTQC`` with the preset's policy delay and critics.
* ``same_maths``: the same, with ``policy_delay=1`` and no critic LayerNorm: exactly SB3's update
  (one actor and entropy update per critic update), so ``same_maths / plain`` is the loop's own gain.
* ``plain``: ``stable_baselines3.SAC`` / ``sb3_contrib.TQC`` built with every setting of
  ``same_maths`` (network, activation, optimizer and its kwargs, critics, quantiles, gamma, tau,
  entropy coefficient and target, learning rate, n-step): checked to have the same parameters and
  optimizer hyperparameters before anything is timed.

``ours / plain`` then adds what the preset's algorithmic choices (policy delay, LayerNorm critics)
cost or save. Each model is warmed up with one ``train()`` call, then ``model.train(gradient_steps=G,
batch_size=B)`` is timed ``R`` times, the variants interleaved (order reversed every other repetition)
so that load from other processes spreads over all of them; the median rate counts (``spread``:
(max - min) / median of the calls, a gauge of the noise). Torch runs on
``--threads`` intra-op threads (the training default is 1). The replay buffer is not wrapped in
``VecNormalize`` (training normalizes sampled observations: the same small cost for every variant).

The last line printed is one JSON object::

    {"metric": "grad_steps_per_s", "value": <sac, 256>, "baseline": <plain SAC, 256>, "ratio": ...,
     "sac_256": ..., "sac_256_baseline": ..., "sac_256_same_maths": ..., "ratio_sac_256": ...,
     "same_maths_ratio_sac_256": ..., <the same for every algo and batch>, "threads": 1, ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch as th
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from pretrain.config import TrainConfig, merge, preset
from pretrain.factory import make_model
from pretrain.sim.mujoco_vec_env import A1MujocoVecEnv

PLAIN_CLASSES: dict[str, type[OffPolicyAlgorithm]] = {"sac": SAC, "tqc": TQC}
VARIANTS = ("ours", "plain", "same_maths")
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
SHOWN_SETTINGS = (
    "policy_delay",
    "critic_layer_norm",
    "net_arch",
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


def variant_config(cfg: TrainConfig, variant: str, batch: int, buffer_size: int, device: str) -> TrainConfig:
    offpolicy: dict[str, Any] = {"batch_size": batch, "buffer_size": buffer_size}
    if variant != "ours":
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
        learning_rate=ref.learning_rate,
        buffer_size=ref.buffer_size,
        learning_starts=ref.learning_starts,
        batch_size=ref.batch_size,
        tau=ref.tau,
        gamma=ref.gamma,
        train_freq=ref.train_freq,
        gradient_steps=ref.gradient_steps,
        ent_coef=ref.ent_coef,
        target_entropy=ref.target_entropy,
        target_update_interval=ref.target_update_interval,
        use_sde=ref.use_sde,
        n_steps=ref.n_steps,
        policy_kwargs=dict(ref.policy_kwargs),
        seed=ref.seed,
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


def load_buffer(model: OffPolicyAlgorithm, source: Any) -> None:
    dst = model.replay_buffer
    for name in BUFFER_ARRAYS:
        getattr(dst, name)[...] = getattr(source, name)
    dst.pos, dst.full = source.pos, source.full


def timed_train(model: OffPolicyAlgorithm, steps: int, batch: int) -> float:
    start = time.perf_counter()
    model.train(gradient_steps=steps, batch_size=batch)
    return steps / (time.perf_counter() - start)


def measure(
    models: dict[str, OffPolicyAlgorithm], steps: int, reps: int, warmup: int, batch: int
) -> dict[str, list[float]]:
    """Rates (gradient steps/s) of ``reps`` timed ``train()`` calls per model, interleaved."""
    for model in models.values():
        model.train(gradient_steps=warmup, batch_size=batch)
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            rates[name].append(timed_train(models[name], steps, batch))
    return rates


def _csv(kind: type, text: str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--algos", default="sac,tqc", help="comma-separated preset names (sac, tqc, sac_raffin_a1, ...)"
    )
    parser.add_argument("--batches", default="256,1024", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
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
    algos, batches = _csv(str, args.algos), _csv(int, args.batches)
    if not algos or not batches or min(batches) < 1 or min(args.steps, args.reps, args.warmup, args.threads) < 1:
        parser.error("--algos/--batches must be non-empty and --batches/--steps/--reps/--warmup/--threads >= 1")
    configs = {name: preset(name) for name in algos}
    for name, cfg in configs.items():
        if cfg.algo not in PLAIN_CLASSES:
            parser.error(f"--algos: preset {name!r} is {cfg.algo}, not an off-policy algorithm")

    th.set_num_threads(args.threads)
    env = A1MujocoVecEnv(args.num_envs, seed=args.seed, num_threads=1)
    buffer_size = max(args.fill, args.num_envs) // args.num_envs * args.num_envs
    source = fill_buffer(env, buffer_size, buffer_size, args.seed)

    print(
        f"Learner speed: gradient steps/s on {args.device}, {args.threads} torch thread(s), replay buffer of "
        f"{source.size() * args.num_envs} transitions, median of {args.reps} interleaved calls of "
        f"{args.steps} steps after a {args.warmup}-step warm-up"
    )
    for name, cfg in configs.items():
        o = cfg.offpolicy
        shown = ", ".join(f"{k}={getattr(o, k)}" for k in SHOWN_SETTINGS if cfg.algo == "tqc" or "quantile" not in k)
        print(f"preset {name} ({cfg.algo}): {shown}")
    print(
        "variants: ours = the preset via make_model; same_maths = ours with policy_delay=1, no critic "
        "LayerNorm; plain = SB3 SAC / sb3-contrib TQC with same_maths's settings"
    )
    header = ("grad steps/s", 14), ("ms/step", 10), ("vs plain", 10), ("spread", 10)
    print(f"{'algo':16s}{'batch':>7s}  {'variant':12s}" + "".join(f"{text:>{width}s}" for text, width in header))

    result: dict[str, Any] = {"metric": "grad_steps_per_s"}
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for name, cfg in configs.items():
        for batch in batches:
            models: dict[str, OffPolicyAlgorithm] = {}
            models["ours"] = make_model(variant_config(cfg, "ours", batch, buffer_size, args.device), env)
            same = make_model(variant_config(cfg, "same_maths", batch, buffer_size, args.device), env)
            models["plain"] = plain_like(cfg.algo, same, env)
            models["same_maths"] = same
            check_same_setup(same, models["plain"])
            for model in models.values():
                load_buffer(model, source)
                model.set_logger(configure(None, []))
            samples = measure(models, args.steps, args.reps, args.warmup, batch)
            rate = {variant: statistics.median(r) for variant, r in samples.items()}
            spread = {variant: (max(r) - min(r)) / statistics.median(r) for variant, r in samples.items()}
            rows[(name, batch)] = rate
            for variant in VARIANTS:
                print(
                    f"{name:16s}{batch:7d}  {variant:12s}{rate[variant]:14.1f}{1e3 / rate[variant]:10.2f}"
                    f"{rate[variant] / rate['plain']:10.3f}{100 * spread[variant]:9.0f}%",
                    flush=True,
                )
            key = f"{name}_{batch}"
            result[key] = round(rate["ours"], 1)
            result[f"{key}_baseline"] = round(rate["plain"], 1)
            result[f"{key}_same_maths"] = round(rate["same_maths"], 1)
            result[f"ratio_{key}"] = round(rate["ours"] / rate["plain"], 3)
            result[f"same_maths_ratio_{key}"] = round(rate["same_maths"] / rate["plain"], 3)
            del models, same
    env.close()

    head = ("sac", 256) if ("sac", 256) in rows else next(iter(rows))
    ours, plain = rows[head]["ours"], rows[head]["plain"]
    summary = {
        "value": round(ours, 1),
        "baseline": round(plain, 1),
        "ratio": round(ours / plain, 3),
        "value_of": f"{head[0]}_{head[1]}",
    }
    result = {"metric": result.pop("metric"), **summary, **result}
    result.update(
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
