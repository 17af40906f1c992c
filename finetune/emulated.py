"""The fine-tuning actor on the emulated A1: emulator node + policy node (fine-tuning mode) over real rclpy.

:func:`run_actor` is what ``launch/emulated.launch.py finetune:=true`` starts, in one process (CI and laptops
without ``ros2 launch``): the actor's parameter files (``policy_node.yaml``, ``finetune_actor.yaml`` over it), then
:func:`actor_params`. The policy node explores, records transitions and, with a ``learner_endpoint``, streams them
to the learner; after a fall it calls the emulator's ``~/reset`` service (a real robot stands up instead) and
starts a new episode. Without a learner it only records, which is how returns are measured (``explore=False``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from a1_common.cli import ArgumentParser, run_main
from finetune.actor_node import FinetuneActorNode
from robot_bridge.run_emulated import EmulatedGraph

EMULATOR_RESET_SERVICE = "/emulator_node/reset"
ACTOR_CONFIG = ("policy_node.yaml", "finetune_actor.yaml")
"""The actor's parameter files (share/robot_bridge/config), as the launch files give them to ``finetune_actor``."""


def actor_params(
    *,
    learner_endpoint: str = "",
    keys_dir: str | Path = "keys",
    work_dir: str | Path = ".",
    explore: bool = True,
    command_mode: str = "fixed",
    episode_steps: int = 0,
    on_learner_lost: str = "keep",
    seed: int = 0,
    actor_id: str = "a1",
    score_ground_truth: bool = False,
) -> dict[str, Any]:
    """The actor node's fine-tuning parameters (see :data:`finetune.actor_node.FINETUNE_PARAMS`)."""
    work = Path(work_dir)
    return {
        "learner_endpoint": learner_endpoint,
        "actor_id": actor_id,
        "keys_dir": str(keys_dir),
        "spool_dir": str(work / "spool"),
        "policy_dir": str(work / "policies"),
        "explore": explore,
        "command_mode": command_mode,
        "episode_steps": int(episode_steps),
        "on_learner_lost": on_learner_lost,
        "auto_reset_service": EMULATOR_RESET_SERVICE,
        "seed": int(seed),
        "score_ground_truth": bool(score_ground_truth),
    }


_STOP_WHY = {
    "seconds": "emulated-time budget",
    "episodes": "episode count",
    "until": "stop condition",
    "timeout": "wall-clock timeout",
}


def run_actor(
    policy_path: str | Path,
    *,
    seconds: float | None = None,
    episodes: int | None = None,
    command: tuple[float, float, float] = (0.5, 0.0, 0.0),
    gap: dict | None = None,
    speed: float = 1.0,
    params: dict | None = None,
    safety_params: dict | None = None,
    on_progress: Callable[[dict], None] | None = None,
    timeout_s: float | None = None,
    until: Callable[[Any], bool] | None = None,
    drain_s: float = 0.0,
) -> dict[str, Any]:
    """Run the emulated actor until ``seconds`` of emulated time with the policy in control, ``episodes``
    finished episodes, ``until(policy_node)`` holds, or ``timeout_s`` of wall-clock; returns its record.

    At the end the policy node is stopped (:meth:`~robot_bridge.policy_node.PolicyNode.finish`: the e-stop latch,
    damping, logged at INFO as ``finished``; the running episode ends as ``interrupted``); with a learner,
    ``drain_s`` > 0 then waits up to that long for every transition to be checkpointed by the learner."""
    if seconds is None and episodes is None and until is None:
        raise ValueError("give seconds, episodes or until")
    policy_params = {**(safety_params or {}), **(params or actor_params())}
    with EmulatedGraph(
        policy_path,
        command=command,
        speed=speed,
        gap=gap,
        policy_params=policy_params,
        policy_node=FinetuneActorNode,
        policy_config=ACTOR_CONFIG,
    ) as graph:
        node = graph.policy
        graph.wait_running()
        t0, wall0 = graph.emulated_seconds, time.monotonic()
        last_report = 0.0
        stop_reason = "seconds"
        while True:
            graph.check_alive()
            if seconds is not None and graph.emulated_seconds - t0 >= seconds:
                break
            if episodes is not None and node.loop.stats.episodes >= episodes:
                stop_reason = "episodes"
                break
            if until is not None and until(node):
                stop_reason = "until"
                break
            if timeout_s is not None and time.monotonic() - wall0 > timeout_s:
                stop_reason = "timeout"
                break
            if on_progress is not None and time.monotonic() - last_report >= 0.5:
                last_report = time.monotonic()
                on_progress({**node.finetune_status(), "emulated_s": graph.emulated_seconds - t0})
            time.sleep(0.02)
        node.finish(f"run_actor reached its {_STOP_WHY[stop_reason]}")  # logged at INFO: a normal end
        estop_ticks = lambda: node.loop.safety.counters.get("ticks:estop", 0)
        deadline = time.monotonic() + 1.0
        while estop_ticks() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # two more ticks: the stop latch is seen and the last transition submitted
        drained = node.client.flush(drain_s) if node.client is not None and drain_s > 0 else None
        status = node.finetune_status()
        return {
            "drained": drained,
            **status,
            "stop_reason": stop_reason,
            "emulated_s": round(graph.emulated_seconds - t0, 3),
            "wall_s": round(time.monotonic() - wall0, 3),
            "episode_log": [asdict(e) for e in node.loop.stats.episode_log],
            "swap_times": list(node.loop.swap_times),
            "transitions_by_version": dict(node.loop.stats.transitions_by_version),
            "safety_counters": node.loop.safety.counters,
            "statuses": list(graph.monitor.statuses),
            "emulator_steps_behind": graph.emulator.steps_behind,
        }


def _main(argv: list[str] | None = None) -> int:
    """``python -m finetune actor``: the emulated robot's actor, streaming to a learner (or only recording)."""
    import json

    from finetune.console import progress
    from finetune.pipeline import DEFAULT_GAP, LENIENT_SAFETY

    p = ArgumentParser(prog="python -m finetune actor", description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", required=True, help="ONNX policy (deploy.export) to start from")
    p.add_argument("--learner", default="", help="learner endpoint, e.g. tcp://127.0.0.1:5555 (empty: record only)")
    p.add_argument("--keys", default="keys", help="key directory: <actor-id>.key_secret and learner.key")
    p.add_argument("--actor-id", default="a1")
    p.add_argument("--work", default="runs/actor", help="spool and received policies")
    p.add_argument("--seconds", type=float, default=60.0, help="emulated seconds with the policy in control")
    p.add_argument("--episode-steps", type=int, default=0, help="0: the contract's episode length")
    p.add_argument("--command", type=float, nargs=3, default=(0.5, 0.0, 0.0), metavar=("VX", "VY", "WZ"))
    p.add_argument("--command-mode", choices=("fixed", "sample"), default="fixed")
    p.add_argument("--no-explore", action="store_true", help="deterministic actions")
    p.add_argument("--gap", help=f"dynamics gap as JSON (default {json.dumps(DEFAULT_GAP)})")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not args.seconds > 0 or not args.speed > 0 or args.episode_steps < 0:
        p.error(f"need --seconds > 0, --speed > 0, --episode-steps >= 0; got {args.seconds}, {args.speed}, "
                f"{args.episode_steps}")  # fmt: skip
    params = actor_params(
        learner_endpoint=args.learner,
        keys_dir=args.keys,
        work_dir=args.work,
        explore=not args.no_explore,
        command_mode=args.command_mode,
        episode_steps=args.episode_steps,
        seed=args.seed,
        actor_id=args.actor_id,
    )
    gap = json.loads(args.gap) if args.gap else dict(DEFAULT_GAP)

    with progress("actor", int(args.seconds), "emulated s") as bar:  # the nodes' log lines go above the bar
        record = run_actor(
            args.policy,
            seconds=args.seconds,
            command=tuple(args.command),
            gap=gap,
            speed=args.speed,
            params=params,
            safety_params=LENIENT_SAFETY,
            on_progress=lambda status: bar(int(status["emulated_s"]), status),
        )
    print(json.dumps({k: v for k, v in record.items() if k not in ("episode_log", "swap_times", "statuses")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "python -m finetune actor")
