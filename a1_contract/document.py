"""The contract's JSON document (the interchange format inside checkpoints and ONNX files; schema in
``a1_contract/SCHEMA.md``): writing it, reading it back and its content hash.

The hash is the first 16 hex digits of the sha256 of the canonical JSON (sorted keys, no whitespace) of the
document without ``hash`` and ``sources``. Reading refuses unknown schema versions, malformed values (as
:class:`~a1_contract.ContractError`, never ``KeyError``) and, by default, a document whose content does not hash to
its ``hash``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from a1_contract.components import (
    ActionBounds,
    CommandRanges,
    ContractError,
    DomainRandomization,
    ObsTerm,
    Terminations,
)

if TYPE_CHECKING:
    from a1_contract.contract import TaskContract

SCHEMA_VERSION = 1

ContractT = TypeVar("ContractT", bound="TaskContract")


def _floats(values: Sequence[float], what: str, length: int | None = None) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if length is not None and len(out) != length:
        raise ContractError(f"{what}: expected {length} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ContractError(f"{what}: values must be finite, got {out}")
    return out


def _range(values: Sequence[float], what: str) -> tuple[float, float]:
    low, high = _floats(values, what, 2)
    if low > high:
        raise ContractError(f"{what}: low {low} > high {high}")
    return low, high


def contract_content(contract: TaskContract) -> dict[str, Any]:
    """The contract's JSON document without ``hash`` and ``sources`` (what the hash covers)."""
    joints = list(contract.joint_names)
    return {
        "schema_version": SCHEMA_VERSION,
        "name": contract.name,
        "joint_names": joints,
        "default_joint_pos": dict(zip(joints, contract.default_joint_pos, strict=True)),
        "joint_pos_limits": {j: list(lim) for j, lim in zip(joints, contract.joint_pos_limits, strict=True)},
        "soft_joint_pos_limit_factor": contract.soft_joint_pos_limit_factor,
        "kp": dict(zip(joints, contract.kp, strict=True)),
        "kd": dict(zip(joints, contract.kd, strict=True)),
        "effort_limit": dict(zip(joints, contract.effort_limit, strict=True)),
        "velocity_limit": dict(zip(joints, contract.velocity_limit, strict=True)),
        "armature": contract.armature,
        "sdk_motor_index": list(contract.sdk_motor_index),
        "action_scale": contract.action_scale,
        "action_bounds": {
            "low": list(contract.action_bounds.low),
            "high": list(contract.action_bounds.high),
            "method": contract.action_bounds.method,
        },
        "obs_terms": [
            {
                "name": t.name,
                "dim": t.dim,
                "scale": t.scale,
                "noise": t.noise,
                "clip": None if t.clip is None else list(t.clip),
                "source": t.source,
            }
            for t in contract.obs_terms
        ],
        "obs_dim": contract.obs_dim,
        "sim_dt": contract.sim_dt,
        "decimation": contract.decimation,
        "policy_rate_hz": contract.policy_rate_hz,
        "episode_length_s": contract.episode_length_s,
        "init_base_height": contract.init_base_height,
        "commands": _plain(dataclasses.asdict(contract.commands)),
        "rewards": dict(contract.rewards),
        "reward_params": dict(contract.reward_params),
        "terminations": _plain(dataclasses.asdict(contract.terminations)),
        "randomization": _plain(dataclasses.asdict(contract.randomization)),
    }


def contract_from_dict(cls: type[ContractT], doc: Mapping[str, Any], verify_hash: bool = True) -> ContractT:
    """Parse a contract document into ``cls``; refuses unknown schema versions and (by default) a wrong hash."""
    try:
        version = doc.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise ContractError(f"schema_version {version!r} is not supported (this code reads {SCHEMA_VERSION})")
        joints = tuple(doc["joint_names"])

        def per_joint(key: str) -> tuple[float, ...]:
            return tuple(float(doc[key][j]) for j in joints)

        bounds = doc["action_bounds"]
        contract = cls(
            name=str(doc["name"]),
            joint_names=joints,
            default_joint_pos=per_joint("default_joint_pos"),
            joint_pos_limits=tuple(_range(doc["joint_pos_limits"][j], f"joint_pos_limits[{j}]") for j in joints),
            soft_joint_pos_limit_factor=float(doc["soft_joint_pos_limit_factor"]),
            kp=per_joint("kp"),
            kd=per_joint("kd"),
            effort_limit=per_joint("effort_limit"),
            velocity_limit=per_joint("velocity_limit"),
            armature=float(doc["armature"]),
            sdk_motor_index=tuple(int(i) for i in doc["sdk_motor_index"]),
            action_scale=float(doc["action_scale"]),
            action_bounds=ActionBounds(
                _floats(bounds["low"], "action_bounds.low", len(joints)),
                _floats(bounds["high"], "action_bounds.high", len(joints)),
                str(bounds.get("method", "explicit")),
            ),
            obs_terms=tuple(
                ObsTerm(
                    name=str(t["name"]),
                    dim=int(t["dim"]),
                    scale=float(t["scale"]),
                    noise=float(t["noise"]),
                    clip=None if t.get("clip") is None else _range(t["clip"], f"obs_terms[{t['name']}].clip"),
                    source=str(t.get("source", "")),
                )
                for t in doc["obs_terms"]
            ),
            sim_dt=float(doc["sim_dt"]),
            decimation=int(doc["decimation"]),
            episode_length_s=float(doc["episode_length_s"]),
            init_base_height=float(doc["init_base_height"]),
            commands=CommandRanges(**_tuples(doc["commands"])),
            rewards={str(k): float(v) for k, v in doc["rewards"].items()},
            reward_params={str(k): float(v) for k, v in doc["reward_params"].items()},
            terminations=Terminations(**_tuples(doc["terminations"])),
            randomization=DomainRandomization(**_tuples(doc["randomization"])),
            sources=dict(doc.get("sources", {})),
        )
    except ContractError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ContractError(f"malformed contract document: {type(exc).__name__}: {exc}") from exc
    # Derived keys are hashed but not parsed: an edit to them would otherwise slip past the hash check.
    for key, value in (("obs_dim", contract.obs_dim), ("policy_rate_hz", contract.policy_rate_hz)):
        if verify_hash and key in doc and doc[key] != value:
            raise ContractError(f"contract hash check: {key} is {doc[key]!r} in the document, {value!r} by content")
    if verify_hash and "hash" not in doc:
        raise ContractError("contract document has no 'hash' (pass verify_hash=False to read a hand-written one)")
    if verify_hash and doc["hash"] != contract.hash:
        raise ContractError(
            f"contract hash mismatch: document says {doc['hash']}, content hashes to {contract.hash} "
            "(the document was edited or is corrupt)"
        )
    return contract


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, for JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    """Lists -> tuples, recursively (inverse of :func:`_plain` for the frozen dataclasses)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def content_hash(content: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace, ``sources`` and ``hash`` excluded)."""
    body = {k: v for k, v in content.items() if k not in ("hash", "sources")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
