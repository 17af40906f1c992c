"""Evaluate a policy on a grid of velocity commands, nominal and under training conditions.

``python -m pretrain evaluate BUNDLE`` runs every command of the grid (default: forward and backward
``vx`` in {-1, -0.5, 0.5, 1} m/s, sideways ``vy`` in {-0.5, 0.5} m/s, turning ``wz`` in {-1, 1} rad/s,
one non-zero component at a time, plus 0.25 m/s forward and standing still) on several robots each, all
in one vector env, for one 20 s episode, under two conditions:

* ``nominal``: nominal dynamics, robots reset at the default pose, no observation noise;
* ``training``: the contract's domain randomization (mass, COM, friction, reset spread, pushes) and
  the training observation noise, i.e. what the policy was trained for.
* ``latency`` (``--conditions all`` or ``latency``): training conditions with every joint target acting one
  policy step (20 ms) late, as on a loaded robot computer.

Per command and condition: the mean linear tracking error ``|cmd_xy - v_xy|`` (m/s, body frame) and
yaw-rate error ``|cmd_wz - w_z|`` (rad/s), both averaged after ``--settle-s`` (the robots start from a
drop at rest); the mean velocity along the command in the world frame (displacement over the measured
window projected on the commanded direction at its start; for a turn, the world yaw rate); falls
(trunk contact; a robot that falls is reset and keeps its command); and the return summed over the 20 s
episode (Isaac Lab's scale: about 15 "almost solved", about 30 for its PPO on this task).

Writes ``evaluation.json`` and ``evaluation.png`` (commanded vs achieved per grid point) to ``--out``
(default: ``<bundle>/evaluation``), optionally a video (``--video``) of one robot following a command
sequence. The last line printed is JSON (``grid_tracking_error_max`` etc.); the exit code is 0 when the
grid goals are met under every evaluated condition, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from a1_common.cli import ArgumentParser, run_main
from a1_contract import TaskContract

# One non-zero component at a time (vx, vy, wz); the grid of the walking goals, plus slow forward and standing.
DEFAULT_GRID: tuple[tuple[float, float, float], ...] = (
    (-1.0, 0.0, 0.0),
    (-0.5, 0.0, 0.0),
    (0.25, 0.0, 0.0),
    (0.5, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, -0.5, 0.0),
    (0.0, 0.5, 0.0),
    (0.0, 0.0, -1.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, 0.0),
)
CONDITIONS: dict[str, dict[str, float]] = {
    "nominal": {"randomize": False, "obs_noise": False},
    "training": {"randomize": True, "obs_noise": True},
    # Training conditions with the joint targets acting one policy step late: a loaded robot computer.
    "latency": {"randomize": True, "obs_noise": True, "action_latency_s": 0.02},
}
DEFAULT_CONDITIONS = ("nominal", "training")
"""What ``--conditions both`` (the default) evaluates; ``all`` adds ``latency``."""


def condition_env_kwargs(condition: str, contract: TaskContract) -> dict[str, Any]:
    """The simulator's keyword arguments for a named condition."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    kwargs = dict(CONDITIONS[condition])
    latency = kwargs.pop("action_latency_s", 0.0)
    kwargs["action_delay_substeps"] = int(round(latency / contract.sim_dt))
    return kwargs


# A command sequence for the video: forward, faster, sideways both ways, turn both ways, backward, stop.
VIDEO_SEQUENCE: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (3.0, (0.5, 0.0, 0.0)),
    (3.0, (1.0, 0.0, 0.0)),
    (3.0, (0.0, 0.5, 0.0)),
    (3.0, (0.0, -0.5, 0.0)),
    (3.0, (0.0, 0.0, 1.0)),
    (3.0, (0.0, 0.0, -1.0)),
    (3.0, (-0.5, 0.0, 0.0)),
    (2.0, (0.0, 0.0, 0.0)),
)


@dataclass(frozen=True)
class Goals:
    """The walking goals a reference policy must meet on the grid (every command, one condition)."""

    lin_error: float = 0.15
    """Max mean linear tracking error (m/s) at every command ..."""
    lin_error_fast: float = 0.2
    """... except at |vx| >= 1 m/s."""
    yaw_error: float = 0.2
    """Max mean yaw-rate error (rad/s)."""
    forward_0_5: tuple[float, float] = (0.45, 0.55)
    """Mean forward speed (world, along the command) at vx = 0.5 m/s."""
    return_20s: float = 30.0
    """Min mean return over the 20 s episode, averaged over the grid."""


@dataclass
class PointResult:
    command: list[float]
    robots: int
    lin_error: float
    yaw_error: float
    speed_along: float
    """m/s along the commanded direction (world frame); for a pure turn, the world yaw rate (rad/s)."""
    lateral_speed: float
    """m/s perpendicular to the commanded direction (world frame; for a turn or standing: |drift| speed)."""
    falls: int
    return_20s: float
    saturated: float
    """Fraction of normalized action entries with |a| > 0.95 (a squashed policy stuck at its bounds)."""
    meets: bool = True


@dataclass
class ConditionResult:
    condition: str
    seconds: float
    settle_s: float
    points: list[PointResult] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        moving = [p for p in self.points if any(p.command)]
        fwd = [p for p in self.points if p.command == [0.5, 0.0, 0.0]]
        return {
            "grid_tracking_error_max": max(p.lin_error for p in self.points),
            "yaw_error_max": max(p.yaw_error for p in self.points),
            "falls": sum(p.falls for p in self.points),
            "return_20s": float(np.mean([p.return_20s for p in (moving or self.points)])),
            "forward_0_5_speed": fwd[0].speed_along if fwd else None,
            "saturated": float(np.mean([p.saturated for p in self.points])),
            "meets_goals": all(p.meets for p in self.points),
        }


def _goal_check(point: PointResult, goals: Goals) -> bool:
    vx, vy, wz = point.command
    if point.falls:
        return False
    lin_max = goals.lin_error_fast if abs(vx) >= 1.0 - 1e-9 else goals.lin_error
    ok = point.lin_error <= lin_max and point.yaw_error <= goals.yaw_error
    if math.isclose(vx, 0.5) and vy == 0.0 and wz == 0.0:
        ok = ok and goals.forward_0_5[0] <= point.speed_along <= goals.forward_0_5[1]
    return ok


def evaluate_condition(
    policy: Any,
    contract: TaskContract,
    grid: list[tuple[float, float, float]],
    *,
    condition: str,
    robots_per_command: int = 4,
    seconds: float = 20.0,
    settle_s: float = 2.0,
    seed: int = 0,
    goals: Goals | None = None,
) -> ConditionResult:
    """Run every grid command on ``robots_per_command`` robots for ``seconds``; ``policy``: raw obs -> action."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
    from a1_common.task import batch_math

    env_kwargs = condition_env_kwargs(condition, contract)
    if not seconds > settle_s >= 0.0:
        raise ValueError(f"need seconds > settle_s >= 0, got seconds={seconds}, settle_s={settle_s}")
    if robots_per_command < 1 or not grid:
        raise ValueError("need at least one command and one robot per command")
    goals = goals or Goals()
    k = robots_per_command
    commands = np.repeat(np.asarray(grid, dtype=np.float64), k, axis=0)
    n = len(commands)
    env = A1MujocoVecEnv(n, contract, seed=seed, num_threads=1, **env_kwargs)
    try:
        env.reset()
        ids = np.arange(n)
        env.commands.set(ids, commands)
        obs = env.observe()
        steps = int(round(seconds / contract.policy_dt))
        settle = int(round(settle_s / contract.policy_dt))
        lin_err, yaw_err = np.zeros(n), np.zeros(n)
        measured = np.zeros(n)
        returns, falls = np.zeros(n), np.zeros(n, dtype=np.int64)
        saturated = np.zeros(n)
        start_xy, start_yaw = env.qpos[:, :2].copy(), batch_math.yaw(env.qpos[:, 3:7])
        yaw_travel = np.zeros(n)
        displacement = np.zeros((n, 2))
        prev_xy, prev_yaw = start_xy.copy(), start_yaw.copy()
        for t in range(steps):
            action = np.asarray(policy(obs))
            obs, rewards, dones, infos = env.step(action)
            returns += rewards
            snap = env.snapshot()
            xy, yaw = env.qpos[:, :2].copy(), batch_math.yaw(snap["quat"])
            done_ids = np.flatnonzero(dones)
            fell = [i for i in done_ids if not infos[i].get("TimeLimit.truncated", False)]
            falls[fell] += 1
            alive = np.ones(n, bool)
            alive[done_ids] = False  # a reset robot's displacement this step is a teleport, not motion
            if t >= settle:
                # Tracking of the step that just ended: reset rows hold the new episode's state, so skip them.
                lin = np.linalg.norm(commands[:, :2] - snap["lin_vel_b"][:, :2], axis=1)
                yaw_rate = snap["ang_vel_b"][:, 2]
                lin_err[alive] += lin[alive]
                yaw_err[alive] += np.abs(commands[alive, 2] - yaw_rate[alive])
                measured[alive] += 1
                saturated[alive] += np.mean(np.abs(action[alive]) > 0.95, axis=1)
                displacement[alive] += (xy - prev_xy)[alive]
                yaw_travel[alive] += batch_math.wrap_to_pi(yaw - prev_yaw)[alive]
            if t == settle - 1:
                start_yaw = yaw.copy()
            prev_xy, prev_yaw = xy, yaw
            if len(done_ids):  # a reset resamples the command: give the robot its grid command back
                env.commands.set(done_ids, commands[done_ids])
                obs[done_ids] = env.observe()[done_ids]
        window = np.maximum(measured, 1) * contract.policy_dt
        result = ConditionResult(condition, round(steps * contract.policy_dt, 6), settle_s)
        for g, cmd in enumerate(grid):
            rows = slice(g * k, (g + 1) * k)
            lin_cmd = np.asarray(cmd[:2])
            vel_w = displacement[rows] / window[rows, None]
            if np.linalg.norm(lin_cmd) > 0:
                # The commanded direction in the world, from each robot's heading when measuring started.
                direction_b = lin_cmd / np.linalg.norm(lin_cmd)
                c, s = np.cos(start_yaw[rows]), np.sin(start_yaw[rows])
                dx, dy = direction_b
                direction_w = np.stack([c * dx - s * dy, s * dx + c * dy], axis=1)
                along = np.sum(vel_w * direction_w, axis=1)
                lateral = np.abs(vel_w[:, 0] * direction_w[:, 1] - vel_w[:, 1] * direction_w[:, 0])
            else:
                along = yaw_travel[rows] / window[rows]
                lateral = np.linalg.norm(vel_w, axis=1)
            point = PointResult(
                command=[float(v) for v in cmd],
                robots=k,
                lin_error=float(np.mean(lin_err[rows] / np.maximum(measured[rows], 1))),
                yaw_error=float(np.mean(yaw_err[rows] / np.maximum(measured[rows], 1))),
                speed_along=float(np.mean(along)),
                lateral_speed=float(np.mean(lateral)),
                falls=int(falls[rows].sum()),
                return_20s=float(np.mean(returns[rows]) * 20.0 / max(seconds, 1e-9)),
                saturated=float(np.mean(saturated[rows] / np.maximum(measured[rows], 1))),
            )
            point.meets = _goal_check(point, goals)
            result.points.append(point)
        return result
    finally:
        env.close()


def plot_grid(results: list[ConditionResult], path: Path) -> Path:
    """Commanded vs achieved (along the command) per grid point, one panel per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        labels, cmd, got, err = [], [], [], []
        for p in res.points:
            vx, vy, wz = p.command
            unit = "rad/s" if (vx, vy) == (0.0, 0.0) and wz else "m/s"
            labels.append(f"vx {vx:g}" if vx else f"vy {vy:g}" if vy else f"wz {wz:g}" if wz else "stand")
            cmd.append(math.hypot(vx, vy) if unit == "m/s" else wz)
            got.append(p.speed_along)
            err.append(p.lin_error)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, cmd, 0.4, label="commanded", color="#9bbbd9")
        colors = ["#3a7d44" if p.meets else "#c0392b" for p in res.points]
        ax.bar(x + 0.2, got, 0.4, label="achieved (world, along the command)", color=colors)
        for xi, p in zip(x, res.points, strict=True):
            note = f"e {p.lin_error:.2f}" + (f"\nfall {p.falls}" if p.falls else "")
            ax.annotate(note, (xi, max(0.0, max(cmd[xi], got[xi])) + 0.03), ha="center", fontsize=7)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, labels, rotation=30, fontsize=8)
        ax.set_ylabel("speed along the command (m/s; turns: rad/s)")
        s = res.summary
        ax.set_title(
            f"{res.condition}: max lin error {s['grid_tracking_error_max']:.2f} m/s, "
            f"falls {s['falls']}, return {s['return_20s']:.1f}",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("green: goals met (lin error, yaw error, no fall); red: missed", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def record_video(
    policy: Any,
    contract: TaskContract,
    out: Path,
    *,
    sequence: tuple[tuple[float, tuple[float, float, float]], ...] = VIDEO_SEQUENCE,
    condition: str = "nominal",
    fps: float = 25.0,
    seed: int = 0,
    name: str = "evaluate",
    size: tuple[int, int] = (480, 360),
) -> Path:
    """One robot following ``sequence`` ((seconds, command), ...), commanded and achieved velocity printed."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
    from a1_common.sim.render import A1Renderer
    from pretrain.demo import label_image, write_video

    out.mkdir(parents=True, exist_ok=True)
    env = A1MujocoVecEnv(1, contract, seed=seed, num_threads=1, **condition_env_kwargs(condition, contract))
    frames: list[np.ndarray] = []
    every = max(1, int(round(1.0 / (fps * contract.policy_dt))))
    try:
        env.reset()
        with A1Renderer(contract, size[0], size[1], deadband=(0.3, 25.0)) as renderer:
            for seconds, command in sequence:
                env.commands.set(np.array([0]), np.asarray([command], dtype=np.float64))
                obs = env.observe()
                for t in range(int(round(seconds / contract.policy_dt))):
                    obs, _, dones, _ = env.step(policy(obs))
                    if dones[0]:
                        env.commands.set(np.array([0]), np.asarray([command], dtype=np.float64))
                        obs = env.observe()
                    if t % every == 0:
                        snap = env.snapshot()
                        v = snap["lin_vel_b"][0]
                        text = (
                            f"cmd vx {command[0]:+.2f} vy {command[1]:+.2f} wz {command[2]:+.2f} | "
                            f"got vx {v[0]:+.2f} vy {v[1]:+.2f} wz {snap['ang_vel_b'][0, 2]:+.2f}"
                        )
                        frames.append(label_image(renderer.render(env.qpos[0], np.asarray(command)), text))
    finally:
        env.close()
    return write_video(frames, out, fps, name=name)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pretrain.rollout import BundlePolicy

    policy = BundlePolicy(args.bundle)
    grid = DEFAULT_GRID if not args.command else [tuple(c) for c in args.command]
    conditions = {"both": list(DEFAULT_CONDITIONS), "all": list(CONDITIONS)}.get(args.conditions, [args.conditions])
    results = []
    for condition in conditions:
        res = evaluate_condition(
            policy,
            policy.contract,
            list(grid),
            condition=condition,
            robots_per_command=args.robots,
            seconds=args.seconds,
            settle_s=args.settle_s,
            seed=args.seed,
        )
        results.append(res)
        if not args.json:
            _print_table(res)
    out = Path(args.out) if args.out else Path(args.bundle) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "bundle": str(args.bundle),
        "contract": policy.contract.name,
        "goals": asdict(Goals()),
        "conditions": {r.condition: {**r.summary, "points": [asdict(p) for p in r.points]} for r in results},
    }
    (out / "evaluation.json").write_text(json.dumps(doc, indent=1))
    plot_grid(results, out / "evaluation.png")
    if args.video:
        doc["video"] = str(record_video(policy, policy.contract, out, seed=args.seed))
    # Headline: the strictest condition evaluated (training conditions when present).
    head = results[-1]
    s = head.summary
    doc["headline"] = {
        "metric": "grid_tracking_error_max",
        "value": round(s["grid_tracking_error_max"], 4),
        "yaw_error_max": round(s["yaw_error_max"], 4),
        "falls": s["falls"],
        "return_20s": round(s["return_20s"], 2),
        "forward_0_5_speed": None if s["forward_0_5_speed"] is None else round(s["forward_0_5_speed"], 4),
        "meets_goals": all(r.summary["meets_goals"] for r in results),
        "conditions": head.condition,
        **{f"{r.condition}_error_max": round(r.summary["grid_tracking_error_max"], 4) for r in results},
    }
    if not args.json:
        video = f", {doc['video']}" if args.video else ""
        print(f"wrote {out / 'evaluation.json'} and {out / 'evaluation.png'}{video}")
    return doc


def _print_table(res: ConditionResult) -> None:
    print(f"{res.condition} ({res.seconds:g} s, measured after {res.settle_s:g} s):")
    print("  command (vx, vy, wz)   lin err  yaw err  along   lateral  falls  return20  sat   goals")
    for p in res.points:
        vx, vy, wz = p.command
        print(
            f"  ({vx:+.2f}, {vy:+.2f}, {wz:+.2f})    {p.lin_error:6.3f}   {p.yaw_error:6.3f}  {p.speed_along:+.3f}  "
            f"{p.lateral_speed:6.3f}   {p.falls:4d}  {p.return_20s:7.2f}  {p.saturated:4.2f}  "
            f"{'ok' if p.meets else 'MISS'}"
        )


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description="Evaluate a policy on a grid of velocity commands (nominal and training conditions).",
        allow_abbrev=False,
    )
    parser.add_argument("bundle", help="bundle or run directory")
    parser.add_argument(
        "--conditions",
        choices=("both", "all", *CONDITIONS),
        default="both",
        help="both: nominal and training (default); all: also latency (training conditions, joint targets one "
        "policy step late)",
    )
    parser.add_argument("--robots", type=int, default=4, help="robots per command (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="episode length evaluated (default 20 s)")
    parser.add_argument("--settle-s", type=float, default=2.0, help="seconds before tracking is measured")
    parser.add_argument(
        "--command",
        type=float,
        nargs=3,
        action="append",
        metavar=("VX", "VY", "WZ"),
        help="a grid point (repeat for several; default: the walking-goal grid)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output directory (default: BUNDLE/evaluation)")
    parser.add_argument("--video", action="store_true", help="also render a video of a command sequence")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    return parser


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.robots < 1:
        parser.error(f"--robots must be >= 1, got {args.robots}")
    if not args.seconds > args.settle_s >= 0:
        parser.error(f"need --seconds > --settle-s >= 0, got {args.seconds} and {args.settle_s}")
    doc = run(args)
    print(json.dumps(doc["headline"]))
    return 0 if doc["headline"]["meets_goals"] else 1


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
