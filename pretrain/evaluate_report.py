"""What ``python -m pretrain evaluate`` shows besides its JSON: the grid plot, the video of one robot following a
command sequence, the per-condition table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from a1_contract import TaskContract
from pretrain.evaluate_grid import ConditionResult, condition_env_kwargs

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


def print_table(res: ConditionResult) -> None:
    print(f"{res.condition} ({res.seconds:g} s, measured after {res.settle_s:g} s):")
    print("  command (vx, vy, wz)   lin err  yaw err  along   lateral  falls  return20  sat   goals")
    for p in res.points:
        vx, vy, wz = p.command
        print(
            f"  ({vx:+.2f}, {vy:+.2f}, {wz:+.2f})    {p.lin_error:6.3f}   {p.yaw_error:6.3f}  {p.speed_along:+.3f}  "
            f"{p.lateral_speed:6.3f}   {p.falls:4d}  {p.return_20s:7.2f}  {p.saturated:4.2f}  "
            f"{'ok' if p.meets else 'MISS'}"
        )
