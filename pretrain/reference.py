"""The committed reference policy, and the command that makes one from a training bundle.

``pretrain/reference_policy/`` is a bundle without its replay buffer (see ``a1_common/bundle.py``),
plus ``README.md`` (how it was trained, its walk check), ``learning_curve.png`` and ``curve.csv``.
Later stages (ONNX export, the ROS 2 bridge, fine-tuning) test against it::

    from pretrain.reference import REFERENCE_BUNDLE
    files = load_bundle_files(REFERENCE_BUNDLE)

``python -m pretrain reference SRC_BUNDLE --dest DIR`` copies a bundle without its replay buffer
(atomically, new ``meta.json`` pointing at the source bundle id) and runs the walk check.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

from a1_common.atomic import fsync_path
from a1_common.bundle import BUFFER_FILE, META_FILE, load_bundle_files, sha256_file
from a1_common.cli import ArgumentParser, run_main

REFERENCE_BUNDLE = Path(__file__).resolve().parent / "reference_policy"


def copy_without_buffer(src: str | Path, dest: str | Path, notes: dict[str, Path] | None = None) -> Path:
    """Copy a verified bundle to ``dest`` (replaced atomically) without its replay buffer."""
    files = load_bundle_files(src)
    dest = Path(dest)
    tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        hashes = {}
        for name in files.meta["files"]:
            if name == BUFFER_FILE:
                continue
            shutil.copy2(files.path / name, tmp / name)
            hashes[name] = sha256_file(tmp / name)
        for name, path in (notes or {}).items():  # documentation beside the bundle, not part of it
            shutil.copy2(path, tmp / name)
        meta = dict(files.meta)
        meta.update(files=hashes, has_replay_buffer=False, bundle_id=uuid.uuid4().hex,
                    source_bundle_id=files.meta["bundle_id"])  # fmt: skip
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for path in tmp.iterdir():
            fsync_path(path)
        old = dest.parent / f".old-{dest.name}-{uuid.uuid4().hex[:8]}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from pretrain.rollout import BundlePolicy, walk_check

    parser = ArgumentParser(prog=prog, description="Make a reference policy from a training bundle.")
    parser.add_argument("bundle", help="source bundle or run directory")
    parser.add_argument(
        "--dest", required=True, help="directory to write, replaced (the committed one: pretrain/reference_policy)"
    )
    parser.add_argument("--run-dir", help="run directory whose curve.csv / learning_curve.png to copy")
    args = parser.parse_args(argv)
    notes = {}
    if args.run_dir:
        for name in ("learning_curve.png", "curve.csv", "reward_terms.png"):
            if (Path(args.run_dir) / name).exists():
                notes[name] = Path(args.run_dir) / name
    dest = copy_without_buffer(args.bundle, args.dest, notes)
    policy = BundlePolicy(dest)
    result = walk_check(policy, policy.contract)
    (dest / "walk_check.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"{dest}: {result.describe()}")
    return 0 if result.walks else 1


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain reference")
