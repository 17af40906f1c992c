"""Run an exported policy with numpy and onnxruntime only (no torch, no SB3): what the robot imports.

::

    runner = PolicyRunner("policy.onnx", expected_contract=get_contract())  # refuses another contract
    raw = runner.act(obs)                        # (obs_dim,) or (N, obs_dim) -> raw action, deterministic
    raw, normalized = runner.sample(obs, rng)    # exploration: Gaussian around the mean, squashed

The file's metadata (:mod:`deploy.metadata`) is read through onnxruntime; its contract is parsed and its
hash verified. The session is single-threaded and sequential (intra- and inter-op threads 1, all graph
optimizations, CPU provider): in a 50 Hz control loop a thread pool only adds wake-up jitter. ``act`` on
one observation reuses a ``(1, obs_dim)`` float32 buffer and runs only the ``action`` output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from a1_contract import ContractError, TaskContract
from deploy.metadata import FORMAT, FORMAT_VERSION, INPUT_NAME, OUTPUT_NAMES, REQUIRED_KEYS, SQUASH_BY_ALGO


class PolicyFileError(RuntimeError):
    """The policy file is missing, not ONNX, or lacks (or contradicts) the metadata this project writes."""


class PolicyInputError(ValueError):
    """An observation has the wrong shape or dtype, or non-finite entries."""


class ContractMismatchError(ContractError):
    """The policy was exported for a different contract than the caller expects; the message names the fields."""


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the control loop's log is not for onnxruntime's notes
    return options


class PolicyRunner:
    """An exported policy: ``act`` (deterministic raw action), ``sample`` (exploration), ``outputs`` (all)."""

    def __init__(self, path: str | Path, expected_contract: TaskContract | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PolicyFileError(f"no policy file at {self.path}")
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for every parse failure
            raise PolicyFileError(f"{self.path}: not a loadable ONNX model: {exc}") from exc
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self._contract = self._read_contract()
        self._check_signature()
        if expected_contract is not None:
            try:
                expected_contract.require_same(self._contract, what=f"policy file {self.path}")
            except ContractError as exc:
                raise ContractMismatchError(str(exc)) from exc
        self._obs_dim = self._contract.obs_dim
        self._algo = self._metadata["algo"]
        self._squash = self._metadata["squash"]
        # One observation: input and output buffers bound to the session once, no per-call allocation.
        self._single_shape = (self._obs_dim,)
        self._single = np.zeros((1, self._obs_dim), np.float32)
        self._single_row = self._single[0]
        self._ones = np.ones(self._obs_dim, np.float32)
        self._single_action = np.zeros((1, self._contract.num_joints), np.float32)
        self._binding = self._session.io_binding()
        self._binding.bind_ortvalue_input(INPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self._single))
        self._binding.bind_ortvalue_output("action", ort.OrtValue.ortvalue_from_numpy(self._single_action))
        self._action_only = ["action"]
        self._gaussian = ["mean", "log_std"]
        self._term_of_index = [
            f"{name}[{i - s.start}]" for name, s in self._contract.obs_slices().items() for i in range(s.start, s.stop)
        ]

    def _read_contract(self) -> TaskContract:
        meta = self._metadata
        missing = [key for key in REQUIRED_KEYS if key not in meta]
        if missing:
            raise PolicyFileError(
                f"{self.path}: ONNX file without this project's policy metadata (missing {', '.join(missing)}); "
                "export it with `python -m deploy.export`"
            )
        if meta["format"] != FORMAT or meta["format_version"] != str(FORMAT_VERSION):
            raise PolicyFileError(
                f"{self.path}: format {meta['format']!r} version {meta['format_version']!r}; "
                f"this runner reads {FORMAT!r} version {FORMAT_VERSION}"
            )
        try:
            contract = TaskContract.from_json(meta["contract"])
        except ContractError as exc:
            raise PolicyFileError(f"{self.path}: the embedded contract is invalid: {exc}") from exc
        if contract.hash != meta["contract_hash"]:
            raise PolicyFileError(
                f"{self.path}: contract_hash {meta['contract_hash']!r} does not match the embedded contract "
                f"({contract.hash}); the file was edited or is corrupt"
            )
        if meta["algo"] not in SQUASH_BY_ALGO or meta["squash"] != SQUASH_BY_ALGO[meta["algo"]]:
            raise PolicyFileError(f"{self.path}: algo {meta['algo']!r} with squash {meta['squash']!r} is not known")
        bounds = json.loads(meta["action_bounds"])
        if (tuple(bounds["low"]), tuple(bounds["high"])) != (contract.action_bounds.low, contract.action_bounds.high):
            raise PolicyFileError(f"{self.path}: action_bounds metadata differs from the embedded contract's bounds")
        return contract

    def _check_signature(self) -> None:
        inputs = [(i.name, i.shape) for i in self._session.get_inputs()]
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        obs_dim, action_dim = self._contract.obs_dim, self._contract.num_joints
        if len(inputs) != 1 or inputs[0][0] != INPUT_NAME or inputs[0][1][1:] != [obs_dim]:
            raise PolicyFileError(f"{self.path}: expected one input {INPUT_NAME!r} of shape (N, {obs_dim}): {inputs}")
        for name in OUTPUT_NAMES:
            if name not in outputs or outputs[name][1:] != [action_dim]:
                raise PolicyFileError(
                    f"{self.path}: expected output {name!r} of shape (N, {action_dim}), outputs are {outputs}"
                )
        if int(self._metadata["obs_dim"]) != obs_dim or int(self._metadata["action_dim"]) != action_dim:
            raise PolicyFileError(f"{self.path}: obs_dim/action_dim metadata differ from the embedded contract")

    # ---- properties ---------------------------------------------------------------------------
    @property
    def contract(self) -> TaskContract:
        return self._contract

    @property
    def metadata(self) -> dict[str, str]:
        """The file's metadata, as stored (JSON strings for structured values; see :mod:`deploy.metadata`)."""
        return dict(self._metadata)

    @property
    def algo(self) -> str:
        return self._algo

    @property
    def squash(self) -> str:
        """``tanh`` (SAC/TQC) or ``clip`` (PPO): how ``mean`` becomes the normalized action."""
        return self._squash

    @property
    def policy_rate_hz(self) -> float:
        return self._contract.policy_rate_hz

    # ---- inference ----------------------------------------------------------------------------
    def act(self, obs: Any) -> np.ndarray:
        """Deterministic raw action, ``(num_joints,)`` for one observation or ``(N, num_joints)`` for a batch.

        Not thread-safe: one observation goes through buffers bound to the session once (IOBinding).
        """
        obs = np.asarray(obs)
        if obs.shape == self._single_shape and (obs.dtype == np.float32 or obs.dtype == np.float64):
            self._single_row[...] = obs
            if not math.isfinite(self._ones.dot(self._single_row)):  # NaN/inf anywhere: a non-finite sum
                self._validate(obs)  # names the bad entries (a finite overflow of the sum passes on)
            self._session.run_with_iobinding(self._binding)
            return self._single_action[0].copy()
        batch, _ = self._validate(obs)
        return self._session.run(self._action_only, {INPUT_NAME: batch})[0]

    def outputs(self, obs: Any) -> dict[str, np.ndarray]:
        """Every output (``action``, ``mean``, ``log_std``) for a batch or a single observation."""
        batch, single = self._validate(obs)
        values = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return {name: value[0] if single else value for name, value in zip(OUTPUT_NAMES, values, strict=True)}

    def sample(self, obs: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Exploration action ``(raw, normalized)``: ``u = mean + exp(log_std) * eps``, then tanh (SAC/TQC)
        or clip to [-1, 1] (PPO); ``normalized`` is what an off-policy learner stores."""
        batch, single = self._validate(obs)
        mean, log_std = self._session.run(self._gaussian, {INPUT_NAME: batch})
        gaussian = mean + np.exp(log_std) * rng.standard_normal(mean.shape, dtype=np.float32)
        normalized = np.tanh(gaussian) if self._squash == "tanh" else np.clip(gaussian, -1.0, 1.0)
        raw = self._contract.action_bounds.to_raw(normalized).astype(np.float32)
        return (raw[0], normalized[0]) if single else (raw, normalized)

    def _validate(self, obs: Any) -> tuple[np.ndarray, bool]:
        """``(float32 batch (N, obs_dim), was a single observation)``, or :class:`PolicyInputError`."""
        obs = np.asarray(obs)
        if obs.dtype != np.float32 and obs.dtype != np.float64:
            raise PolicyInputError(f"observation dtype must be float32 or float64, got {obs.dtype}")
        if obs.shape[-1:] != (self._obs_dim,) or obs.ndim not in (1, 2):
            raise PolicyInputError(
                f"observation shape must be ({self._obs_dim},) or (N, {self._obs_dim}) for contract "
                f"{self._contract.name!r}, got {obs.shape}"
            )
        batch = obs.reshape(-1, self._obs_dim).astype(np.float32, copy=False)
        finite = np.isfinite(batch)  # after the cast: a float64 beyond float32's range becomes inf
        if not finite.all():
            bad = np.argwhere(~finite)
            where = ", ".join(f"row {r} {self._term_of_index[c]}" for r, c in bad[:8])
            more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
            raise PolicyInputError(f"observation has non-finite entries (NaN/inf) at {where}{more}")
        return batch, obs.ndim == 1
