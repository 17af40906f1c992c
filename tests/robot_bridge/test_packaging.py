"""The installed ROS 2 package and the launch files, checked without ``ros2 launch`` (not installable here).

* The environment's prefix holds the ament index marker, package.xml, the launch files and the node
  executables, where ROS 2 looks for them; ``ament_index_python`` resolves the package.
* Each launch file parses; every node it starts is an installed executable of ours; every parameter it sets
  is declared by that node; every launch argument it reads is declared.
* Each node's parameter registry is exactly what the node declares, each with a description.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest
from rclpy.parameter import Parameter

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(sys.prefix)
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
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


def test_every_ros_executable_runs_a_console_script_of_ours():
    names = sorted(p.name for p in (REPO / "robot_bridge/ros/lib").iterdir())
    assert names == ["emulator_node", "policy_node", "run_emulated"]
    for name in names:
        module, function = executable_target(name).split(":")
        assert callable(getattr(importlib.import_module(module), function))


# `_arg(name, value_type)` in a launch file -> the Python type of the node parameter it must feed.
_LAUNCH_TYPES = {"str": str, "float": float, "bool": bool, "int": int, None: list}


def _value_type(value: ast.expr) -> type | None:
    """The node-side type an `_arg(...)` parameter value converts to, or a literal's type (``None``: neither)."""
    if isinstance(value, ast.Constant):
        return type(value.value)
    if not (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_arg"):
        return None
    if len(value.args) < 2:
        return str
    kind = value.args[1]
    return _LAUNCH_TYPES[kind.id if isinstance(kind, ast.Name) else kind.value]


def _launch_nodes(path: Path) -> tuple[list[dict], set[str], set[str]]:
    """(nodes: package, executable, {parameter: type}), declared arguments, arguments read."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes, declared, read = [], set(), set()

    def name_of(call: ast.Call) -> str:
        return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")

    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        kind = name_of(call)
        first = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
        if kind == "DeclareLaunchArgument":
            declared.add(first)
        elif kind in ("LaunchConfiguration", "_arg") and first is not None:
            read.add(first)
        elif kind == "Node":
            keywords = {k.arg: k.value for k in call.keywords}
            parameters = {}
            for item in getattr(keywords.get("parameters"), "elts", []):
                assert isinstance(item, ast.Dict), f"{path.name}: parameters must be dict literals (checked statically)"
                for key, value in zip(item.keys, item.values, strict=True):
                    parameters[key.value] = _value_type(value)
            nodes.append({"package": keywords["package"].value, "executable": keywords["executable"].value,
                          "parameters": parameters})  # fmt: skip
    return nodes, declared, read


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_installed_executables_and_declared_parameters(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    nodes, declared, read = _launch_nodes(path)
    assert nodes, "a launch file that starts no node"
    assert read <= declared, f"launch arguments read but not declared: {sorted(read - declared)}"
    for node in nodes:
        assert node["package"] == "robot_bridge"
        module = importlib.import_module(executable_target(node["executable"]).split(":")[0])
        registry = {p.name: p for p in module.PARAMS}
        undeclared = node["parameters"].keys() - registry.keys()
        assert not undeclared, f"{path.name}: {node['executable']} does not declare {sorted(undeclared)}"
        for name, value_type in node["parameters"].items():  # ROS refuses a value of another type
            assert value_type is type(registry[name].default), f"{path.name}: {name} is {value_type}"


def test_the_parameter_registries_are_what_the_nodes_declare(ros_graph, untrained_policy):
    from robot_bridge.emulator_node import PARAMS as EMULATOR_PARAMS
    from robot_bridge.emulator_node import EmulatorNode
    from robot_bridge.policy_node import PARAMS as POLICY_PARAMS
    from robot_bridge.policy_node import PolicyNode

    policy = PolicyNode(
        context=ros_graph.context, parameter_overrides=[Parameter("policy_path", value=str(untrained_policy))]
    )
    emulator = EmulatorNode(context=ros_graph.context)
    for node, registry in ((policy, POLICY_PARAMS), (emulator, EMULATOR_PARAMS)):
        ros_graph.nodes.append(node)  # destroyed with the graph
        declared = set(node.list_parameters([], 0).names) - {"use_sim_time", "start_type_description_service"}
        assert declared == {p.name for p in registry}
        for descriptor in node.describe_parameters(sorted(declared)):
            assert descriptor.description and descriptor.read_only, descriptor.name
