"""The installed ROS 2 package, checked without ``ros2 launch`` (not installable here; the launch files and the
parameter files: test_launch_files.py).

* The environment's prefix holds the ament index marker, package.xml, the launch files, the parameter files
  (``share/robot_bridge/config/<executable>.yaml``) and the node executables, where ROS 2 looks for them;
  ``ament_index_python`` resolves the package.
* Each node's parameter registry is exactly what the node declares, each with a description.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

from rclpy.parameter import Parameter

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(sys.prefix)
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
CONFIG_FILES = sorted((REPO / "config").glob("*.yaml"))
STALE = "the installed copy is stale: re-run `bash scripts/setup.sh` (data files are copied at install time)"


def console_scripts() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}


def executable_target(name: str) -> str:
    """``module:function`` that ``<prefix>/lib/robot_bridge/<name>`` runs."""
    wrapper = PREFIX / "lib" / "robot_bridge" / name
    assert wrapper.is_file() and os.access(wrapper, os.X_OK), f"{wrapper} missing or not executable; {STALE}"
    script = re.search(r'/bin/([\w-]+)"', wrapper.read_text()).group(1)
    assert (PREFIX / "bin" / script).is_file(), f"console script {script} not installed"
    return console_scripts()[script]


def test_ament_index_resolves_the_package(monkeypatch):
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    # A venv is an install prefix like /opt/ros/<distro>: ROS 2 finds it through AMENT_PREFIX_PATH.
    monkeypatch.setenv(
        "AMENT_PREFIX_PATH", os.pathsep.join(filter(None, [str(PREFIX), os.environ.get("AMENT_PREFIX_PATH")]))
    )
    share = Path(get_package_share_directory("robot_bridge"))
    assert share == PREFIX / "share" / "robot_bridge" and Path(get_package_prefix("robot_bridge")) == PREFIX
    assert (PREFIX / "share" / "ament_index" / "resource_index" / "packages" / "robot_bridge").is_file()
    package = ET.parse(share / "package.xml").getroot()
    assert package.findtext("name") == "robot_bridge" and package.get("format") == "3"
    assert package.find("export/build_type").text == "ament_python"
    assert (share / "package.xml").read_bytes() == (REPO / "robot_bridge/ros/package.xml").read_bytes(), STALE
    installed = sorted(p.name for p in (share / "launch").glob("*.launch.py"))
    assert installed == [p.name for p in LAUNCH_FILES], STALE
    for launch_file in LAUNCH_FILES:
        assert (share / "launch" / launch_file.name).read_bytes() == launch_file.read_bytes(), STALE
    installed = sorted(p.name for p in (share / "config").glob("*.yaml"))
    assert installed == [p.name for p in CONFIG_FILES], STALE
    for config_file in CONFIG_FILES:
        assert (share / "config" / config_file.name).read_bytes() == config_file.read_bytes(), STALE


def test_every_ros_executable_runs_a_console_script_of_ours():
    names = sorted(p.name for p in (REPO / "robot_bridge/ros/lib").iterdir())
    assert names == [
        "a1_driver",
        "emulator_node",
        "estimator",
        "finetune_actor",
        "policy_node",
        "run_emulated",
        "run_robot_graph",
    ]
    for name in names:
        module, function = executable_target(name).split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_the_parameter_registries_are_what_the_nodes_declare(ros_graph, untrained_policy):
    from finetune.actor_node import PARAMS as ACTOR_PARAMS  # the fine-tuning actor: the policy node's and its own
    from finetune.actor_node import FinetuneActorNode
    from robot_bridge.a1_driver_node import PARAMS as DRIVER_PARAMS
    from robot_bridge.a1_driver_node import A1DriverNode
    from robot_bridge.emulator_node import PARAMS as EMULATOR_PARAMS
    from robot_bridge.emulator_node import EmulatorNode
    from robot_bridge.estimator_node import PARAMS as ESTIMATOR_PARAMS
    from robot_bridge.estimator_node import EstimatorNode
    from robot_bridge.policy_node import PARAMS as POLICY_PARAMS
    from robot_bridge.policy_node import PolicyNode

    policy = PolicyNode(
        context=ros_graph.context, parameter_overrides=[Parameter("policy_path", value=str(untrained_policy))]
    )
    emulator = EmulatorNode(context=ros_graph.context)
    loopback = {"robot_ip": "127.0.0.1", "local_ip": "127.0.0.1", "local_port": 0}  # dry run: sends nothing
    driver = A1DriverNode(
        context=ros_graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in loopback.items()]
    )
    estimator = EstimatorNode(context=ros_graph.context)
    actor = FinetuneActorNode(
        context=ros_graph.context, parameter_overrides=[Parameter("policy_path", value=str(untrained_policy))]
    )
    for node, registry in (
        (policy, POLICY_PARAMS),
        (actor, ACTOR_PARAMS),
        (emulator, EMULATOR_PARAMS),
        (driver, DRIVER_PARAMS),
        (estimator, ESTIMATOR_PARAMS),
    ):
        ros_graph.nodes.append(node)  # destroyed with the graph
        declared = set(node.list_parameters([], 0).names) - {"use_sim_time", "start_type_description_service"}
        assert declared == {p.name for p in registry}
        for descriptor in node.describe_parameters(sorted(declared)):
            assert descriptor.description and descriptor.read_only, descriptor.name
