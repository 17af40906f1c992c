"""``python -m pretrain play BUNDLE``: watch a policy walk. One robot follows a command sequence (forward,
faster, sideways both ways, turning both ways, backward, stop) in the embedded MuJoCo simulator; the video
shows the commanded and the achieved body velocity on every frame, like Isaac Lab's ``play.py --video``.

    python -m pretrain play pretrain/reference_policy                       # -> <bundle>/play/play.mp4
    python -m pretrain play runs/sac-.../checkpoints/latest --condition training --out videos
    python -m pretrain play BUNDLE --sequence "4:0.5,0,0 4:0,0,1 2:0,0,0"   # SECONDS:VX,VY,WZ ...

The video is MP4 when ``imageio-ffmpeg`` is installed, else an animated GIF.
"""

from __future__ import annotations

from pathlib import Path

from a1_common.cli import ArgumentParser, UsageError, run_main
from pretrain.evaluate_grid import CONDITIONS
from pretrain.evaluate_report import VIDEO_SEQUENCE

Sequence = tuple[tuple[float, tuple[float, float, float]], ...]


def parse_sequence(text: str) -> Sequence:
    """``"3:0.5,0,0 2:0,0,1"`` -> ((3.0, (0.5, 0.0, 0.0)), (2.0, (0.0, 0.0, 1.0)))."""
    steps = []
    for item in text.replace(";", " ").split():
        try:
            seconds, command = item.split(":")
            vx, vy, wz = (float(v) for v in command.split(","))
            steps.append((float(seconds), (vx, vy, wz)))
        except ValueError:
            raise UsageError(f"--sequence item {item!r} is not SECONDS:VX,VY,WZ (e.g. 3:0.5,0,0)") from None
        if not steps[-1][0] > 0:
            raise UsageError(f"--sequence item {item!r}: seconds must be > 0")
    if not steps:
        raise UsageError("--sequence is empty")
    return tuple(steps)


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="bundle or run directory")
    parser.add_argument("--out", help="output directory (default: BUNDLE/play)")
    parser.add_argument(
        "--condition",
        choices=sorted(CONDITIONS),
        default="nominal",
        help="nominal dynamics, or training conditions (randomization, pushes, observation noise)",
    )
    parser.add_argument("--sequence", help="commands as SECONDS:VX,VY,WZ ... (default: a tour of the command grid)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 360), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.fps > 0 or min(args.size) < 16:
        parser.error(f"need --fps > 0 and --size of at least 16 x 16, got {args.fps} and {args.size}")
    sequence = parse_sequence(args.sequence) if args.sequence else VIDEO_SEQUENCE

    from pretrain.evaluate_report import record_video
    from pretrain.rollout import BundlePolicy

    policy = BundlePolicy(args.bundle)
    out = Path(args.out) if args.out else policy.files.path / "play"
    print(f"rendering {sum(s for s, _ in sequence):.0f} s of {args.bundle} ({args.condition}) ...", flush=True)
    path = record_video(policy, policy.contract, out, sequence=sequence, condition=args.condition, fps=args.fps,
                        seed=args.seed, name="play", size=tuple(args.size))  # fmt: skip
    seconds = sum(s for s, _ in sequence)
    print(f"wrote {path} ({seconds:.0f} s, {path.stat().st_size / 1e6:.1f} MB)")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain play")


if __name__ == "__main__":
    raise SystemExit(main())
