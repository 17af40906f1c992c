"""Checkpoint bundles: one directory that carries everything a later stage needs.

Layout of a bundle directory::

    model.zip          SB3 save: actor, critics, target critics, entropy coefficient, optimizer states,
                       step count (``num_timesteps``) and update count (``_n_updates``)
    replay_buffer.npz  the filled part of the SB3 replay buffer as plain arrays, no pickle (optional:
                       absent in the reference policy)
    obs_norm.npz       observation normalization: mean, var, count, clip_obs, epsilon (plain arrays)
    contract.json      the task contract (``a1_contract`` JSON, hash inside)
    config.yaml        the resolved training config
    meta.json          written last: kind, version, bundle id, algo, steps, contract hash, versions,
                       git commit, and the sha256 of every file above

Atomicity: a bundle is written into a hidden temporary directory beside its final place, every file
fsynced, ``meta.json`` last, then renamed into place in one ``rename`` (atomic on POSIX). A run keeps
``checkpoints/step_<N>/`` bundles and a ``checkpoints/latest`` symlink swapped with ``os.replace``;
an interrupted write leaves the previous bundle and link untouched. :func:`load_bundle_files`
verifies every file against ``meta.json`` before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from a1_common.atomic import fsync_path
from a1_contract import TaskContract

BUNDLE_KIND = "a1_sim2real.bundle"
BUNDLE_VERSION = 1
MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.npz"
OBS_NORM_FILE = "obs_norm.npz"
CONTRACT_FILE = "contract.json"
CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, corrupted or does not match what the caller expects."""


@dataclass(frozen=True)
class ObsNorm:
    """Observation normalization: ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``."""

    mean: np.ndarray
    var: np.ndarray
    count: float
    clip_obs: float
    epsilon: float

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        normalized: np.ndarray = np.clip(scaled, -self.clip_obs, self.clip_obs)
        return normalized

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(
                f,
                mean=self.mean,
                var=self.var,
                count=np.float64(self.count),
                clip_obs=np.float64(self.clip_obs),
                epsilon=np.float64(self.epsilon),
            )

    @classmethod
    def load(cls, path: Path) -> ObsNorm:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"].copy(), z["var"].copy(), float(z["count"]), float(z["clip_obs"]), float(z["epsilon"]))

    @classmethod
    def identity(cls, dim: int) -> ObsNorm:
        return cls(np.zeros(dim), np.ones(dim), 0.0, np.inf, 0.0)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("a1-sim2real", "torch", "stable-baselines3", "sb3-contrib", "mujoco", "numpy", "gymnasium"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return res.stdout.strip() + ("+dirty" if dirty else "") if res.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bundle(
    dest: str | Path,
    model: Any,
    obs_norm: ObsNorm,
    contract: TaskContract,
    config_yaml: str,
    *,
    algo: str,
    with_replay_buffer: bool = True,
    extra_meta: dict[str, Any] | None = None,
    extra_files: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write a bundle at ``dest`` atomically (``dest`` must not exist yet).

    ``extra_files``: file name -> a function that writes it (fine-tuning adds its real-robot buffer and state);
    they are hashed and verified like every other file of the bundle.
    """
    dest = Path(dest)
    if dest.exists():
        raise BundleError(f"{dest} exists; bundles are never overwritten in place")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model.save(tmp / MODEL_FILE)
        if with_replay_buffer and getattr(model, "replay_buffer", None) is not None:
            save_replay_buffer(model.replay_buffer, tmp / BUFFER_FILE)
        obs_norm.save(tmp / OBS_NORM_FILE)
        (tmp / CONTRACT_FILE).write_text(contract.to_json() + "\n")
        (tmp / CONFIG_FILE).write_text(config_yaml)
        for name, write in (extra_files or {}).items():
            write(tmp / name)
        files = {}
        for path in sorted(tmp.iterdir()):
            fsync_path(path)
            files[path.name] = sha256_file(path)
        meta = {
            "kind": BUNDLE_KIND,
            "version": BUNDLE_VERSION,
            "bundle_id": uuid.uuid4().hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "algo": algo,
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(getattr(model, "_n_updates", 0)),
            "contract_hash": contract.hash,
            "contract_name": contract.name,
            "has_replay_buffer": BUFFER_FILE in files,
            "versions": versions(),
            "git_commit": git_commit(),
            "files": files,
            **(extra_meta or {}),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        fsync_path(tmp / META_FILE)
        fsync_path(tmp)
        os.rename(tmp, dest)
        fsync_path(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buffer: Any, path: Path) -> None:
    """The filled rows of an SB3 ``ReplayBuffer`` (rows are vector steps, columns envs) as an ``.npz``."""
    if getattr(buffer, "optimize_memory_usage", False):
        raise BundleError("replay buffers with optimize_memory_usage=True are not supported")
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:rows] for name in _BUFFER_ARRAYS}
    with open(path, "wb") as f:
        np.savez(
            f,
            pos=np.int64(buffer.pos),
            full=np.bool_(buffer.full),
            buffer_size=np.int64(buffer.buffer_size),
            n_envs=np.int64(buffer.n_envs),
            **arrays,
        )


def load_replay_buffer(buffer: Any, path: Path) -> None:
    """Fill an SB3 ``ReplayBuffer`` of the same geometry from :func:`save_replay_buffer`'s file."""
    with np.load(path, allow_pickle=False) as z:
        size, n_envs = int(z["buffer_size"]), int(z["n_envs"])
        if (size, n_envs) != (buffer.buffer_size, buffer.n_envs):
            raise BundleError(
                f"{path}: saved buffer has {size} rows x {n_envs} envs, the model's {buffer.buffer_size} x "
                f"{buffer.n_envs}; resume with the same env.num_envs and offpolicy.buffer_size"
            )
        for name in _BUFFER_ARRAYS:
            data = z[name]
            target = getattr(buffer, name)
            if data.shape[1:] != target.shape[1:]:
                raise BundleError(
                    f"{path}: {name} has shape {data.shape[1:]} per row, the model expects {target.shape[1:]}"
                )
            target[: len(data)] = data
        buffer.pos, buffer.full = int(z["pos"]), bool(z["full"])


def replay_buffer_transitions(buffer: Any) -> int:
    """Transitions stored (all envs)."""
    return int(buffer.size() * buffer.n_envs)


def resolve_bundle_dir(path: str | Path) -> Path:
    """A bundle directory from a bundle, a run directory or its ``checkpoints`` directory."""
    path = Path(path)
    for candidate in (path, path / "latest", path / "checkpoints" / "latest"):
        if (candidate / META_FILE).is_file():
            return candidate.resolve()
    raise BundleError(f"no checkpoint bundle at {path} (looked for meta.json in it, latest/ and checkpoints/latest/)")


@dataclass(frozen=True)
class BundleFiles:
    """A verified bundle on disk; nothing unpickled yet."""

    path: Path
    meta: dict[str, Any]
    contract: TaskContract
    config: dict[str, Any]
    obs_norm: ObsNorm

    @property
    def algo(self) -> str:
        return str(self.meta["algo"])

    @property
    def has_replay_buffer(self) -> bool:
        return bool(self.meta.get("has_replay_buffer"))


def load_bundle_files(path: str | Path, expect_contract: TaskContract | None = None) -> BundleFiles:
    """Verify a bundle (kind, version, file hashes, contract hash) and read its plain-data parts."""
    import yaml

    bundle = resolve_bundle_dir(path)
    try:
        meta = json.loads((bundle / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{bundle}: unreadable meta.json: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("kind") != BUNDLE_KIND:
        raise BundleError(f"{bundle}: not a checkpoint bundle (meta.json kind {meta.get('kind')!r})")
    if meta.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{bundle}: bundle version {meta.get('version')!r}, this code reads {BUNDLE_VERSION}")
    for name, digest in meta.get("files", {}).items():
        file = bundle / name
        if not file.is_file():
            raise BundleError(f"{bundle}: {name} is missing")
        if sha256_file(file) != digest:
            raise BundleError(f"{bundle}: {name} does not match its sha256 in meta.json (corrupted or edited)")
    for required in (MODEL_FILE, OBS_NORM_FILE, CONTRACT_FILE, CONFIG_FILE):
        if required not in meta.get("files", {}):
            raise BundleError(f"{bundle}: meta.json does not list {required}")
    contract = TaskContract.from_json((bundle / CONTRACT_FILE).read_text())
    if contract.hash != meta.get("contract_hash"):
        raise BundleError(f"{bundle}: contract.json hash {contract.hash} != meta.json {meta.get('contract_hash')}")
    if expect_contract is not None:
        expect_contract.require_same(contract, what=f"bundle {bundle}")
    config = yaml.safe_load((bundle / CONFIG_FILE).read_text()) or {}
    return BundleFiles(bundle, meta, contract, config, ObsNorm.load(bundle / OBS_NORM_FILE))


class CheckpointDir:
    """``run/checkpoints/<prefix><N>/`` bundles (``step_`` + step count by default), a ``latest`` link, and pruning
    of old bundles."""

    def __init__(self, run_dir: str | Path, keep: int = 2, prefix: str = "step_") -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.keep = max(1, int(keep))
        self.prefix = prefix

    def save(self, model: Any, *args: Any, name: str | None = None, **kwargs: Any) -> Path:
        """:func:`write_bundle` into ``name`` (default ``<prefix><num_timesteps>``), then point ``latest`` at it."""
        name = name or f"{self.prefix}{int(model.num_timesteps):012d}"
        dest = self.root / name
        if dest.exists():  # same step saved twice (e.g. final save right after a periodic one)
            return dest
        write_bundle(dest, model, *args, **kwargs)
        link_tmp = self.root / f".latest-{uuid.uuid4().hex[:8]}"
        os.symlink(name, link_tmp)
        os.replace(link_tmp, self.root / "latest")
        fsync_path(self.root)
        self._prune(keep_name=name)
        return dest

    def _prune(self, keep_name: str) -> None:
        bundles = sorted(p for p in self.root.glob(f"{self.prefix}*") if p.is_dir())
        for old in bundles[: -self.keep]:
            if old.name != keep_name:
                shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".tmp-*"):  # left by a write that was killed
            shutil.rmtree(stale, ignore_errors=True)


class BundlePolicy:
    """A bundle's actor as ``obs (N, obs_dim) raw -> normalized action (N, J)``, on the CPU."""

    def __init__(self, path: str | Path, expect_contract: TaskContract | None = None) -> None:
        from a1_common.algos import ALGO_CLASSES  # torch + SB3: only where a model is loaded

        self.files: BundleFiles = load_bundle_files(path, expect_contract)
        self.contract = self.files.contract
        self.model = ALGO_CLASSES[self.files.algo].load(self.files.path / "model.zip", device="cpu")

    def __call__(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        normalized = self.files.obs_norm.normalize(np.asarray(obs, dtype=np.float64)).astype(np.float32)
        actions, _ = self.model.predict(normalized, deterministic=deterministic)
        clipped: np.ndarray = np.clip(actions, -1.0, 1.0)
        return clipped
