"""Fine-tuning in a gapped copy of the training simulator: the learner's settings in minutes, not an hour.

    python benchmarks/finetune_sim.py [--transitions 60000] [--envs 4] [--marks 15000 30000 60000]
                                      [--gap '{"mass_scale": 1.2, ...}'] [--set anchor_weight=0 --set utd=0.5]

The learner is the robot's (:class:`finetune.learner.Learner`: the bundle's model, the simulator buffer, the real
buffer, mixed batches, critic warm-up, the anchor), without sockets. Its "real" transitions come from ``--envs``
robots of the embedded MuJoCo simulator with a dynamics gap (trunk mass, motor strength and friction through
:func:`robot_bridge.emulator.apply_gap`, actuation latency as physics steps of the previous target, the training
observation noise) instead of the ROS emulator: the same ``--transitions`` budget as 20 minutes at 50 Hz costs a
few minutes of CPU. Rewards are the simulator's, i.e. ground truth.

At each mark the current actor is measured as ``benchmarks/finetune_gain.py`` measures it on the emulated robot:
deterministic, ``--eval-envs`` robots, 500 steps (10 s) at 0.5 m/s; a fallen robot scores nothing after its fall.

The default gap is stronger than the pipeline's (``finetune.pipeline.DEFAULT_GAP``): the training simulator
randomizes trunk mass and friction and trains with the observation noise, so the pipeline's gap costs nothing
here (measured: 14.99 with it, 14.77 without); this one costs about a quarter of the return.

Last line JSON: ``{"metric": "recovered_fraction_sim", "value": (R_last - R_gap) / (R_nominal - R_gap),
"baseline": R_gap, "ratio": R_last / R_gap, "marks": {...}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIM_GAP = {"mass_scale": 1.2, "friction": 0.5, "motor_strength": 0.75, "action_latency_s": 0.02}
"""Heavier (+20%), weaker motors (-25%), less friction (0.5), one policy step (20 ms) of actuation latency."""


def gapped_env(contract, num_envs: int, seed: int, gap: dict):
    """``num_envs`` nominal robots (no domain randomization, training observation noise) with ``gap`` applied."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
    from robot_bridge.emulator import DynamicsGap, apply_gap

    g = DynamicsGap(**gap)
    delay = round(g.action_latency_s / contract.sim_dt)
    if abs(delay * contract.sim_dt - g.action_latency_s) > 1e-9:
        raise ValueError(f"action_latency_s must be a multiple of sim_dt = {contract.sim_dt} s here")

    def modify(model) -> None:
        from a1_common.sim.a1_model import A1ModelInfo

        apply_gap(model, A1ModelInfo.of(model, contract).trunk_body, g)
        if g.friction is not None:
            model.geom_friction[:, 0] = g.friction  # as the training randomization sets it

    return A1MujocoVecEnv(
        num_envs, contract, seed=seed, num_threads=1, randomize=False, modify_model=modify, action_delay_substeps=delay
    )


def evaluate(model, obs_norm, contract, gap: dict, num_envs: int, steps: int = 500, seed: int = 123) -> dict:
    """Deterministic return over ``steps`` at 0.5 m/s forward (a robot's return stops at its fall)."""
    env = gapped_env(contract, num_envs, seed, gap)
    env.reset()
    ids, command = np.arange(num_envs), np.array([0.5, 0.0, 0.0])
    returns, alive = np.zeros(num_envs), np.ones(num_envs, dtype=bool)
    for _ in range(steps):
        env.commands.set(ids, command)
        actions, _ = model.predict(obs_norm.normalize(env.observe()).astype(np.float32), deterministic=True)
        _, rewards, dones, _ = env.step(actions)
        returns += rewards * alive
        alive &= ~dones
    env.close()
    return {"return": round(float(returns.mean()), 4), "falls": int((~alive).sum())}


def main() -> int:
    from finetune.learner import Learner
    from finetune.learner_config import LearnerConfig
    from finetune.messages import TransitionBatch
    from finetune.pipeline import DEFAULT_BUNDLE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=DEFAULT_BUNDLE)
    p.add_argument("--out", default="runs/finetune_sim")
    p.add_argument("--transitions", type=int, default=60_000, help="real transitions (60000 = 20 min at 50 Hz)")
    p.add_argument("--marks", type=int, nargs="+", default=[15_000, 30_000, 60_000])
    p.add_argument("--envs", type=int, default=4, help="gapped robots producing the transitions")
    p.add_argument("--eval-envs", type=int, default=8)
    p.add_argument("--gap", default=json.dumps(SIM_GAP), help="DynamicsGap fields as JSON")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a LearnerConfig field")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    gap = json.loads(args.gap)
    types = {f.name: type(f.default) for f in fields(LearnerConfig)}
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in types:
            p.error(f"--set {item}: no LearnerConfig field {name!r}")
        overrides[name] = value.lower() in ("1", "true", "yes") if types[name] is bool else types[name](value)
    out = Path(args.out)
    config = LearnerConfig(bundle=args.bundle, out=str(out / "learner"), seed=args.seed, **overrides)
    learner = Learner(config, progress=False)
    model, contract, norm = learner.model, learner.contract, learner.obs_norm
    t0 = time.monotonic()
    nominal = evaluate(model, norm, contract, {}, args.eval_envs)
    zero_shot = evaluate(model, norm, contract, gap, args.eval_envs)
    print(f"nominal {nominal}, zero-shot with the gap {zero_shot}", file=sys.stderr, flush=True)

    env = gapped_env(contract, args.envs, args.seed + 1, gap)
    obs = env.reset()
    seq = [0] * args.envs
    sent, episodes, falls, marks = 0, 0, 0, {}
    from tqdm import tqdm

    bar = tqdm(total=args.transitions, desc="fine-tuning (sim)", unit=" transitions", file=sys.stderr, mininterval=1)
    while sent < args.transitions:
        actions, _ = model.predict(norm.normalize(obs).astype(np.float32), deterministic=False)
        new_obs, rewards, dones, infos = env.step(actions)
        for i in range(args.envs):
            truncated = bool(dones[i] and infos[i].get("TimeLimit.truncated", False))
            terminated = bool(dones[i]) and not truncated
            next_obs = infos[i]["terminal_observation"] if dones[i] else new_obs[i]
            episodes += int(dones[i])
            falls += int(terminated)
            learner.insert(
                TransitionBatch(
                    f"sim{i}", seq[i], obs[i : i + 1], actions[i : i + 1], rewards[i : i + 1], next_obs[None],
                    np.array([terminated]), np.array([truncated]), np.zeros(1, np.int32),
                )
            )  # fmt: skip
            seq[i] += 1
        obs, sent = new_obs, sent + args.envs
        learner.train_owed()
        bar.update(args.envs)
        for mark in args.marks:
            if mark not in marks and sent >= mark:
                model.policy.set_training_mode(False)
                marks[mark] = {**evaluate(model, norm, contract, gap, args.eval_envs), "updates": learner.stats.updates}
                bar.write(f"{mark} transitions: {marks[mark]}", file=sys.stderr)
    bar.close()
    drop = nominal["return"] - zero_shot["return"]
    last = marks[max(marks)]["return"]
    result = {
        "metric": "recovered_fraction_sim",
        "value": round((last - zero_shot["return"]) / drop, 4) if drop > 0 else None,
        "baseline": zero_shot["return"],
        "ratio": round(last / zero_shot["return"], 4),
        "nominal": nominal,
        "zero_shot": zero_shot,
        "marks": marks,
        "episodes": episodes,
        "falls": falls,
        "gap": gap,
        "learner": {k: v for k, v in asdict(learner.config).items() if k in overrides or k in ("utd", "anchor_weight")},
        "wall_s": round(time.monotonic() - t0, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
