"""The installed ROS 2 package and the launch files, checked without ``ros2 launch`` (not installable here).

* The environment's prefix holds the ament index marker, package.xml, the launch files and the node
  executables, where ROS 2 looks for them; ``ament_index_python`` resolves the package.
* Each launch file parses; every node it starts is an installed executable of ours; every parameter it sets
  is declared by that node; every launch argument it reads is declared.
* The robot launch files (``a1_robot``, ``finetune_robot``) start with the first-run safety defaults, run exactly
  one driver (at the robot, or with ``emulated:=true`` at the emulator on loopback, fed the same port and foot
  force scale), and default every other argument to the node's own default.
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
import yaml
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
    """(nodes: package, executable, condition, {parameter: type}, {parameter: value expression}), declared
    arguments, arguments read. A node's ``parameters`` are dict literals, or names bound once to a dict literal
    in the file (later dicts override earlier ones, as in launch_ros)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes, declared, read = [], set(), set()
    bindings: dict[str, list[ast.expr]] = {}
    for assign in (n for n in ast.walk(tree) if isinstance(n, ast.Assign)):
        for target in assign.targets:
            if isinstance(target, ast.Name):
                bindings.setdefault(target.id, []).append(assign.value)

    def name_of(call: ast.Call) -> str:
        return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")

    def dict_literal(item: ast.expr) -> ast.Dict:
        if isinstance(item, ast.Name):
            bound = bindings.get(item.id, [])
            assert len(bound) == 1, f"{path.name}: {item.id} must be assigned exactly once (checked statically)"
            item = bound[0]
        assert isinstance(item, ast.Dict), f"{path.name}: parameters must be dict literals (checked statically)"
        assert None not in item.keys, f"{path.name}: no ** in parameter dicts (checked statically)"
        return item

    def condition(value: ast.expr | None) -> tuple[str, str] | None:
        """``IfCondition(LaunchConfiguration("x"))`` (or of a name bound to one) as ``("IfCondition", "x")``."""
        if value is None:
            return None
        argument = value.args[0] if isinstance(value, ast.Call) and len(value.args) == 1 else None
        if isinstance(argument, ast.Name) and len(bindings.get(argument.id, [])) == 1:
            argument = bindings[argument.id][0]
        ok = isinstance(argument, ast.Call) and name_of(argument) == "LaunchConfiguration"
        assert ok and isinstance(argument.args[0], ast.Constant), f"{path.name}: unreadable {ast.unparse(value)}"
        return name_of(value), argument.args[0].value

    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        kind = name_of(call)
        first = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
        if kind == "DeclareLaunchArgument":
            declared.add(first)
        elif kind in ("LaunchConfiguration", "_arg") and first is not None:
            read.add(first)
        elif kind == "Node":
            keywords = {k.arg: k.value for k in call.keywords}
            parameters, values = {}, {}
            listed = keywords.get("parameters", ast.List(elts=[]))
            assert isinstance(listed, ast.List), f"{path.name}: parameters must be a list (checked statically)"
            for item in listed.elts:
                item = dict_literal(item)
                for key, value in zip(item.keys, item.values, strict=True):
                    parameters[key.value], values[key.value] = _value_type(value), value
            nodes.append({"package": keywords["package"].value, "executable": keywords["executable"].value,
                          "condition": condition(keywords.get("condition")), "parameters": parameters,
                          "values": values})  # fmt: skip
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


def _argument_defaults(path: Path) -> dict[str, object]:
    """Each declared launch argument's default, parsed as YAML (as launch_ros does): name -> value."""
    defaults = {}
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            keywords = {k.arg: k.value for k in call.keywords}
            if "default_value" in keywords:
                defaults[call.args[0].value] = yaml.safe_load(keywords["default_value"].value)
    return defaults


# The robot launch files: where they differ from the nodes' own defaults on purpose (everything else must not).
ROBOT_LAUNCH_OVERRIDES = {
    "a1_robot.launch.py": {"power_limit_w"},
    "finetune_robot.launch.py": {"power_limit_w", "auto_stand_up", "on_learner_lost", "initial_command",
                                 "learner_endpoint"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ROBOT_LAUNCH_OVERRIDES))
def test_robot_launch_files_start_safe_and_swap_only_the_robot_when_emulated(name):
    path = REPO / "launch" / name
    nodes, _, _ = _launch_nodes(path)
    defaults = _argument_defaults(path)
    # First-run safety: nothing is sent until dry_run:=false, the power guard is set low, no hidden emulator.
    assert defaults["dry_run"] is True and defaults["emulated"] is False
    assert defaults["power_limit_w"] <= (200.0 if name == "a1_robot.launch.py" else 400.0)
    if name == "a1_robot.launch.py":
        assert defaults["auto_stand_up"] is False and defaults["command"] == [0.0, 0.0, 0.0]
    else:
        assert defaults["auto_stand_up"] is True and defaults["on_learner_lost"] == "stand"
    by_executable: dict[str, list[dict]] = {}
    for node in nodes:
        by_executable.setdefault(node["executable"], []).append(node)
    policy_executable = "policy_node" if name == "a1_robot.launch.py" else "finetune_actor"
    assert sorted(by_executable) == sorted(["a1_driver", "emulator_node", "estimator", policy_executable])
    (emulator,) = by_executable["emulator_node"]
    assert emulator["condition"] == ("IfCondition", "emulated")
    constants = {k: v.value for k, v in emulator["values"].items() if isinstance(v, ast.Constant)}
    assert constants == {"interface": "udp", "udp_ip": "127.0.0.1"}
    # Exactly one driver runs: at the robot, or (emulated) at the emulator's loopback port.
    drivers = {node["condition"]: node for node in by_executable["a1_driver"]}
    assert set(drivers) == {("IfCondition", "emulated"), ("UnlessCondition", "emulated")}
    real, emulated = drivers["UnlessCondition", "emulated"], drivers["IfCondition", "emulated"]
    assert ast.unparse(real["values"]["robot_ip"]) == "_arg('robot_ip')"
    assert {k: ast.unparse(emulated["values"][k]) for k in ("robot_ip", "local_ip")} == {
        "robot_ip": "'127.0.0.1'",
        "local_ip": "'127.0.0.1'",
    }
    for driver in (real, emulated):
        for driver_side, emulator_side in (("robot_port", "udp_port"), ("foot_force_scale", "foot_force_scale")):
            assert ast.unparse(driver["values"][driver_side]) == ast.unparse(emulator["values"][emulator_side])
        assert ast.unparse(driver["values"]["dry_run"]) == "_arg('dry_run', bool)"
    # The policy's odom is the estimator's (no remapping to a ground truth that a real robot lacks).
    (estimator,) = by_executable["estimator"]
    assert estimator["condition"] is None and len(by_executable[policy_executable]) == 1
    source = path.read_text()
    assert "remappings" not in source and "ground_truth" not in source.split('"""', 2)[2]


@pytest.mark.parametrize("name", sorted(ROBOT_LAUNCH_OVERRIDES))
def test_robot_launch_defaults_are_the_nodes_defaults_unless_overridden_on_purpose(name):
    path = REPO / "launch" / name
    nodes, _, _ = _launch_nodes(path)
    defaults = _argument_defaults(path)
    checked, overridden = set(), set()
    for node in nodes:
        registry = {p.name: p.default for p in importlib.import_module(
            executable_target(node["executable"]).split(":")[0]).PARAMS}  # fmt: skip
        for parameter, value in node["values"].items():
            if not (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_arg"):
                continue
            argument = value.args[0].value
            if argument not in defaults:  # required (policy_path)
                continue
            if parameter in ROBOT_LAUNCH_OVERRIDES[name]:  # an override that no longer differs is stale
                assert defaults[argument] != registry[parameter], f"{name}: {parameter} is no override any more"
                overridden.add(parameter)
                continue
            assert defaults[argument] == registry[parameter], (
                f"{name}: argument {argument} defaults to {defaults[argument]!r} but {node['executable']}'s "
                f"{parameter} to {registry[parameter]!r}; make them equal or list it in ROBOT_LAUNCH_OVERRIDES"
            )
            checked.add(parameter)
    assert overridden == ROBOT_LAUNCH_OVERRIDES[name]
    assert {"dry_run", "watchdog_timeout_s", "state_timeout_s", "command_timeout_s"} <= checked


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
