"""The policy node's stand-up over real rclpy: the emulated robot lies on its belly, ``~/stand_up`` brings it to
the default pose, the safety layer's soft start follows and the policy runs again."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from std_srvs.srv import Trigger

from robot_bridge.run_emulated import EmulatedGraph
from tests.robot_bridge.conftest import wait_for
from tests.robot_bridge.test_emulated_walk import LENIENT, reference_policy  # noqa: F401 (a fixture)

_spec = importlib.util.spec_from_file_location(
    "standup_benchmark_node", Path(__file__).resolve().parents[2] / "benchmarks" / "standup.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)


def _call(graph: EmulatedGraph, service: str) -> Trigger.Response:
    node = rclpy.create_node(f"standup_test_client_{service.split('/')[-1]}", context=graph.context)
    graph.executor.add_node(node)  # spun by the graph's executor thread
    try:
        client = node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=5.0), f"{service} is not offered"
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 5.0, f"{service} to answer")
        return future.result()
    finally:
        graph.executor.remove_node(node)
        node.destroy_node()


def test_stand_up_service_brings_a_robot_on_its_belly_back_to_the_policy(reference_policy):  # noqa: F811
    with EmulatedGraph(reference_policy, command=(0.0, 0.0, 0.0), policy_params=LENIENT) as graph:
        graph.wait_running()
        assert _call(graph, "/policy_node/estop").success
        emulator, robot = graph.emulator, graph.emulator.robot
        with emulator._lock:  # the physics thread waits while the robot is dropped on its belly
            sensors, _ = bench.drop_on_belly(robot, np.random.default_rng(3))
        assert sensors.position[2] < 0.15, "lying down before the stand-up"
        n_before = len(graph.monitor.statuses)
        response = _call(graph, "/policy_node/stand_up")
        assert response.success, response.message
        started = time.monotonic()
        wait_for(
            lambda: any(s.startswith("stand_up_done") for s in graph.monitor.statuses[n_before:]),
            8.0,
            f"the stand-up to finish: {graph.monitor.statuses[n_before:]}",
        )
        stood_in = time.monotonic() - started
        wait_for(lambda: graph.monitor.statuses[-1].startswith("running"), 5.0, "the policy to take over again")
        time.sleep(1.0)
        height = float(robot.data.qpos[2])
        statuses = [s.split(":")[0] for s in graph.monitor.statuses[n_before:]]
    assert "standing_up" in statuses and "stand_up_refused" not in statuses, statuses
    assert stood_in < 4.0, f"stood up in {stood_in:.2f} s (benchmark: median 2.2 s)"
    assert height > 0.22, f"trunk at {height:.3f} m one second after the policy took over"
