"""``a1-sim-demo``: a short look at the simulated A1 with the contract's domain randomization.

N robots start from the contract's randomized resets (pose spread, base velocity, joint scale; startup
mass / COM / friction) and hold the default pose with the contract's PD (raw action 0), while the
contract's pushes happen. Robot 0 is filmed, a few robots are photographed, and trunk height and
reward terms are plotted. Everything written goes to ``--out`` (default ``runs/demo``).

    a1-sim-demo --num-envs 16 --seconds 12 --seed 0 --out runs/demo
    python -m pretrain demo --no-video
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco (headless rendering)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from a1_common.cli import ArgumentParser, run_main  # noqa: E402
from a1_contract import DEFAULT_VARIANT, VARIANTS, get_contract  # noqa: E402

VIDEO_FPS = 25.0
VIDEO_SIZE = (400, 300)  # width, height of robot 0's film
SNAPSHOT_SIZE = (320, 240)
SNAPSHOT_ROBOTS = 4
SNAPSHOT_TIMES = 4
MAX_VIDEO_BYTES = 5_000_000


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog or "a1-sim-demo",
        description="Short MuJoCo run of N A1 robots holding the default pose under the contract's domain "
        "randomization and pushes; writes a video of robot 0, a snapshot grid, plots and summary.json.",
    )
    p.add_argument("--num-envs", type=int, default=16, help="number of robots (default 16)")
    p.add_argument(
        "--seconds", type=float, default=12.0, help="simulated seconds (default 12: pushes start 10-15 s after a reset)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the randomization and episodes (default 0)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument(
        "--variant",
        default=DEFAULT_VARIANT,
        choices=sorted(VARIANTS),
        help=f"contract variant (default {DEFAULT_VARIANT})",
    )
    p.add_argument("--no-video", action="store_true", help="skip the video of robot 0 (faster)")
    return p


def label_image(image: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((6, 4), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(255, 255, 255))
    draw.text((6, 4), text, fill=(0, 0, 0))
    return np.asarray(img)


def write_video(frames: list[np.ndarray], out: Path, fps: float, name: str = "a1_demo") -> Path:
    """MP4 through imageio-ffmpeg when installed, else an animated GIF through pillow."""
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        import imageio.v2 as imageio

        path = out / f"{name}.mp4"
        imageio.mimsave(path, frames, fps=fps, codec="libx264", quality=6, macro_block_size=8)
        return path
    from PIL import Image

    path = out / f"{name}.gif"
    # One palette for the whole film (from a few frames): fast, no flicker between frames.
    sample = np.concatenate(frames[:: max(1, len(frames) // 4)][:4], axis=0)
    palette = Image.fromarray(sample).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000.0 / fps), loop=0, optimize=False, disposal=1
    )
    return path


def _plot(
    out: Path,
    t: np.ndarray,
    heights: np.ndarray,
    term_means: dict[str, np.ndarray],
    reward_mean: np.ndarray,
    events: dict[str, list[tuple[int, int]]],
    title: str,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_h, ax_r) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True, constrained_layout=True)
    for i in range(heights.shape[1]):
        ax_h.plot(
            t, heights[:, i], lw=0.9, alpha=0.8, color="C0" if i == 0 else None, label="robot 0" if i == 0 else None
        )
    for name, marker, color in (("push", "v", "tab:orange"), ("reset", "x", "tab:red")):
        pts = events[name]
        if pts:
            ks, ids = np.array(pts).T
            ax_h.scatter(t[ks], heights[ks, ids], marker=marker, color=color, zorder=3, label=name)
    ax_h.set_ylabel("trunk height (m)")
    ax_h.set_title(f"{title}: trunk height, {heights.shape[1]} robots")
    ax_h.legend(loc="lower right", fontsize=8)
    ax_h.grid(alpha=0.3)
    for k, (name, values) in enumerate(sorted(term_means.items(), key=lambda kv: -np.abs(kv[1]).mean())):
        ax_r.plot(t, values, lw=1.0, label=name, color=f"C{k % 10}")
    ax_r.plot(t, reward_mean, lw=1.6, color="black", label="step reward")
    ax_r.set_ylabel("weight x term x dt (mean over robots)")
    ax_r.set_xlabel("simulated time (s)")
    ax_r.set_title("per-step reward terms")
    ax_r.legend(loc="lower right", fontsize=7, ncol=3)
    ax_r.grid(alpha=0.3)
    path = out / "a1_demo_summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_demo(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
    from a1_common.sim.render import A1Renderer, render_grid

    t_start = time.perf_counter()
    contract = get_contract(args.variant)
    n, dt = int(args.num_envs), contract.policy_dt
    steps = max(1, int(round(args.seconds / dt)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    env = A1MujocoVecEnv(n, contract, seed=args.seed, randomize=True, obs_noise=True)
    env.reset()
    action = np.asarray(contract.action_bounds.to_normalized(np.zeros(contract.num_joints)), dtype=np.float64)
    if np.abs(action).max() > 1.0:
        raise SystemExit(f"contract {contract.name}: raw action 0 is outside its action bounds; cannot hold the pose")
    actions = np.tile(action, (n, 1))

    video_every = max(1, int(round(1.0 / (VIDEO_FPS * dt))))
    fps = 1.0 / (video_every * dt)
    snap_robots = list(range(min(SNAPSHOT_ROBOTS, n)))
    snap_steps = sorted({int(round(k * (steps - 1) / max(1, SNAPSHOT_TIMES - 1))) for k in range(SNAPSHOT_TIMES)})
    # The film's camera holds still while robot 0 stays within 5 cm / 10 deg of its aim (steady, small GIF).
    film = None if args.no_video else A1Renderer(contract, *VIDEO_SIZE, deadband=(0.05, 10.0))
    camera = A1Renderer(contract, *SNAPSHOT_SIZE)

    heights = np.zeros((steps, n))
    rewards = np.zeros((steps, n))
    term_sums: dict[str, np.ndarray] = {}
    frames: list[np.ndarray] = []
    snapshots: dict[tuple[int, int], np.ndarray] = {}
    events: dict[str, list[tuple[int, int]]] = {"push": [], "reset": []}  # (step, robot)
    returns: list[float] = []
    terminated = truncated = 0
    sim_wall = render_wall = 0.0

    with tqdm(total=steps, desc=f"A1 x{n}", unit="step", dynamic_ncols=True, mininterval=0.5) as bar:
        for k in range(steps):
            t0 = time.perf_counter()
            push_left = env.push_time_left.copy()
            _, reward, dones, infos = env.step(actions)
            sim_wall += time.perf_counter() - t0
            tk = (k + 1) * dt
            pushed = (~dones) & (env.push_time_left > push_left - 0.5 * dt)
            events["push"] += [(k, int(i)) for i in np.flatnonzero(pushed)]
            for i in np.flatnonzero(dones):
                info = infos[i]
                if info.get("TimeLimit.truncated", False):
                    truncated += 1
                else:
                    terminated += 1
                    events["reset"].append((k, int(i)))
                returns.append(info["episode"]["r"])
            heights[k] = env.base_height
            rewards[k] = reward
            for name, value in env.last_reward_terms.items():
                term_sums.setdefault(name, np.zeros((steps, n)))[k] = contract.rewards[name] * value * dt

            t0 = time.perf_counter()
            if film is not None and k % video_every == 0:
                frames.append(film.render(env.qpos[0], env.commands.command[0]))
            if k in snap_steps:
                for i in snap_robots:
                    img = camera.render(env.qpos[i], env.commands.command[i])
                    snapshots[(i, k)] = label_image(img, f"robot {i}  t={tk:.1f}s  h={env.base_height[i]:.2f}m")
            render_wall += time.perf_counter() - t0
            bar.update(1)
            if k % 10 == 0:
                bar.set_postfix(h=f"{heights[k].mean():.3f}", r=f"{reward.mean():+.3f}", ended=terminated + truncated)

    t0 = time.perf_counter()
    paths: dict[str, str] = {}
    if frames:
        paths["video"] = str(write_video(frames, out, fps))
    grid = render_grid([snapshots[(i, k)] for i in snap_robots for k in snap_steps], cols=len(snap_steps))
    from PIL import Image

    Image.fromarray(grid).save(out / "a1_demo.png")
    paths["snapshots"] = str(out / "a1_demo.png")
    t = np.arange(1, steps + 1) * dt
    term_means = {name: v.mean(axis=1) for name, v in term_sums.items()}
    paths["plot"] = str(
        _plot(out, t, heights, term_means, rewards.mean(axis=1), events, f"{contract.name}, seed {args.seed}")
    )
    write_wall = time.perf_counter() - t0
    for r in (film, camera):
        if r is not None:
            r.close()

    mean_terms = {name: float(v.mean()) for name, v in term_sums.items()}
    summary = {
        "contract": contract.name,
        "contract_hash": contract.hash,
        "variant": args.variant,
        "seed": args.seed,
        "num_envs": n,
        "policy_steps": steps,
        "policy_dt": dt,
        "sim_seconds": steps * dt,
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "sim_wall_seconds": round(sim_wall, 3),
        "render_wall_seconds": round(render_wall, 3),
        "write_wall_seconds": round(write_wall, 3),
        "policy_steps_per_s": round(steps / sim_wall, 1),
        "env_steps_per_s": round(steps * n / sim_wall, 1),
        "realtime_factor": round(steps * dt * n / sim_wall, 1),
        "episodes_ended": terminated + truncated,
        "episodes_terminated": terminated,
        "episodes_truncated": truncated,
        "physics_diverged": int(env.num_diverged),
        "ended_episode_returns": returns,
        "pushes": len(events["push"]),
        "push_events": [{"t": round((k + 1) * dt, 3), "robot": i} for k, i in events["push"]],
        "termination_events": [{"t": round((k + 1) * dt, 3), "robot": i} for k, i in events["reset"]],
        "trunk_height_mean": float(heights.mean()),
        "trunk_height_min": float(heights.min()),
        "trunk_height_max": float(heights.max()),
        "trunk_height_final_mean": float(heights[-1].mean()),
        "step_reward_mean": float(rewards.mean()),
        "reward_terms_mean": dict(sorted(mean_terms.items(), key=lambda kv: -abs(kv[1]))),
        "video_frames": len(frames),
        "video_fps": fps if frames else None,
        "files": paths,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["files"]["summary"] = str(out / "summary.json")
    env.close()
    return summary


def _report(s: dict) -> None:
    top = list(s["reward_terms_mean"].items())[:4]
    lines = [
        f"A1 demo ({s['contract']}, seed {s['seed']}): {s['num_envs']} robots holding the default pose (raw action 0), "
        f"domain randomization + pushes on",
        f"  simulated   {s['sim_seconds']:.2f} s x {s['num_envs']} robots = {s['policy_steps']} policy steps of "
        f"{s['policy_dt'] * 1000:.0f} ms",
        f"  wall        {s['wall_seconds']:.1f} s total (physics {s['sim_wall_seconds']:.2f} s, rendering "
        f"{s['render_wall_seconds']:.1f} s, writing {s['write_wall_seconds']:.1f} s)",
        f"  speed       {s['policy_steps_per_s']:.0f} batched policy steps/s = {s['env_steps_per_s']:.0f} env steps/s "
        f"({s['realtime_factor']:.0f}x real time)",
        f"  episodes    {s['episodes_ended']} ended: {s['episodes_terminated']} terminated, "
        f"{s['episodes_truncated']} truncated; {s['physics_diverged']} diverged; {s['pushes']} pushes",
        f"  trunk       mean height {s['trunk_height_mean']:.3f} m (min {s['trunk_height_min']:.3f}, "
        f"max {s['trunk_height_max']:.3f}, final mean {s['trunk_height_final_mean']:.3f})",
        f"  reward      mean step reward {s['step_reward_mean']:+.4f}; largest terms: "
        + ", ".join(f"{k} {v:+.4f}" for k, v in top),
        "  wrote",
        *(f"    {p}" for p in s["files"].values()),
    ]
    print("\n".join(lines))


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(None if argv is None else [str(a) for a in argv])
    if args.num_envs < 1 or args.seconds <= 0:
        raise SystemExit("--num-envs must be >= 1 and --seconds > 0")
    summary = run_demo(args)
    _report(summary)
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "a1-sim-demo")


if __name__ == "__main__":
    raise SystemExit(main())
