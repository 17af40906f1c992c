"""New policies from the learner, loaded off the fine-tuning actor's control path (:mod:`finetune.actor`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from a1_common.atomic import atomic_write
from a1_contract import ContractError
from deploy.runner import PolicyFileError, PolicyRunner


class PolicyLoader:
    """Turns :class:`~finetune.messages.PolicyUpdate` s from the client into loaded runners, off the control path.

    Each update is written to ``policy_dir/policy_v<N>.onnx`` (atomically: a record of what ran on the robot),
    loaded, and checked against the running contract; :meth:`take` hands the newest loaded one to the tick.
    """

    def __init__(self, client: Any, policy_dir: Path, expected_contract: Any, log: Callable[[str], None]) -> None:
        self.client = client
        self.dir = Path(policy_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.expected = expected_contract
        self.log = log
        self._ready: tuple[int, PolicyRunner, float] | None = None
        self.rejected = 0
        self.received_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy_loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            update = self.client.take_policy()
            if update is None:
                continue
            received = time.monotonic()
            path = self.dir / f"policy_v{update.version:05d}.onnx"
            try:
                atomic_write(path, update.onnx)
                runner = PolicyRunner(path, expected_contract=self.expected)
            except (PolicyFileError, ContractError, OSError) as exc:
                self.rejected += 1
                self.log(f"rejected policy version {update.version}: {exc}")
                continue
            self.received_at[update.version] = received
            self._ready = (update.version, runner, received)

    def take(self) -> tuple[int, PolicyRunner, float] | None:
        """The newest policy loaded since the last call, as ``(version, runner, monotonic time received)``, or None."""
        ready, self._ready = self._ready, None
        return ready

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
