"""ROS 2 test plumbing: an isolated DDS domain per test process, policies to run, and an in-process graph.

Every test process picks its own ``ROS_DOMAIN_ID`` (from its pid) and keeps discovery on this host, so
parallel test runs on one machine do not hear each other. Tests spin real rclpy nodes in an executor thread on
a private ``rclpy.Context``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

from a1_contract import get_contract  # noqa: E402
from tests.deploy.conftest import QUICK_PARITY, fresh_bundle, swapped_joints  # noqa: E402


def wait_for(predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """Poll ``predicate`` every 5 ms until it holds; fail naming ``what`` after ``timeout`` seconds.

    A callable ``what`` is called at the timeout, so the message shows the state then (an f-string shows the
    state when the wait began)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(0.005)


@pytest.fixture(scope="session")
def untrained_policy(tmp_path_factory) -> Path:
    """An exported, untrained SAC policy for the default contract (mechanics tests; it does not walk)."""
    from deploy.export import export_policy

    root = tmp_path_factory.mktemp("bridge_untrained")
    bundle = fresh_bundle(root / "bundle", get_contract(), "sac", log_std=-3.0)
    export_policy(bundle, root / "policy.onnx", **QUICK_PARITY)
    return root / "policy.onnx"


@pytest.fixture(scope="session")
def mismatched_policy(tmp_path_factory) -> Path:
    """A policy exported for the same robot with two joints listed in the other order."""
    from deploy.export import export_policy

    root = tmp_path_factory.mktemp("bridge_mismatched")
    bundle = fresh_bundle(root / "bundle", swapped_joints(get_contract()), "sac")
    export_policy(bundle, root / "policy.onnx", **QUICK_PARITY)
    return root / "policy.onnx"


class RosGraph:
    """Nodes on a private context, spun by an executor in a background thread."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=[])
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self._thread.join(timeout=5.0)  # before destroying nodes: no callback may run on a destroyed one
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        """The executor's thread (where the nodes' callbacks run)."""
        return self._thread


@pytest.fixture
def ros_graph() -> Iterator[RosGraph]:
    graph = RosGraph()
    try:
        yield graph
    finally:
        graph.close()
