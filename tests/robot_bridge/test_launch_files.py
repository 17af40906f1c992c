"""The launch files and the nodes' parameter files, checked without ``ros2 launch`` (not installable here).

* Each launch file parses; every node it starts is an installed executable of ours; every parameter it sets, in a
  dict or in a parameter file, is declared by that node with the type the node declares; every launch argument it
  reads is declared and its description names the node parameters it sets.
* A parameter is set in one place: its node's parameter file or a launch argument (the per-run choices), never
  both; between them they set every parameter of every node the launch files start.
* ``a1_robot.launch.py`` starts with the first-run safety defaults, runs exactly one driver (at the robot, or with
  ``emulated:=true`` at the emulator on loopback, fed the same port and foot force scale) and with
  ``finetune:=true`` ``finetune_actor`` in place of ``policy_node``; every launch default equals the node's own
  default unless listed in ``LAUNCH_OVERRIDES``.
* The run entry points read the installed parameter files, layered as the launch files layer them.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from tests.robot_bridge.test_packaging import CONFIG_FILES, LAUNCH_FILES, PREFIX, REPO, executable_target

ROBOT_LAUNCH = REPO / "launch" / "a1_robot.launch.py"
# `_arg(name, value_type)` in a launch file -> the Python type of the node parameter it must feed.
_LAUNCH_TYPES = {"str": str, "float": float, "bool": bool, "int": int, None: list}


def _registry(executable: str) -> dict:
    """The parameters (name -> ``robot_bridge.params.Param``) of the node that executable ``executable`` runs."""
    return {p.name: p for p in importlib.import_module(executable_target(executable).split(":")[0]).PARAMS}


def _parameter_file(name: str) -> dict[str, dict]:
    """``config/<name>`` of the repository: node name -> its ``ros__parameters``."""
    document = yaml.safe_load((REPO / "config" / name).read_text())
    return {node: section["ros__parameters"] for node, section in document.items()}


def _value_type(value: ast.expr) -> type | None:
    """The node-side type an `_arg(...)` parameter value converts to, or a literal's type (``None``: neither)."""
    if isinstance(value, ast.Constant):
        return type(value.value)
    if not _is_arg(value):
        return None
    if len(value.args) < 2:
        return str
    kind = value.args[1]
    return _LAUNCH_TYPES[kind.id if isinstance(kind, ast.Name) else kind.value]


def _is_arg(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_arg"


def _same_type(value: object, default: object) -> bool:
    """Whether ROS takes ``value`` for a parameter declared with ``default`` (no int -> float conversion)."""
    if type(value) is not type(default):
        return False
    if isinstance(value, list) and default:
        return all(type(item) is type(default[0]) for item in value)
    return True


def _name_of(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


class LaunchFile:
    """A launch file read statically: ``nodes`` (package, executable, name, condition, parameter ``files``,
    ``parameters`` {name: type} and ``values`` {name: expression} of its dicts, later dicts overriding earlier ones
    as in launch_ros), ``arguments`` (name -> the DeclareLaunchArgument call) and the arguments ``read``."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, path.name
        self.source = path.read_text()
        tree = ast.parse(self.source, filename=str(path))
        self.bindings: dict[str, list[ast.expr]] = {}
        for assign in (n for n in ast.walk(tree) if isinstance(n, ast.Assign)):
            for target in assign.targets:
                if isinstance(target, ast.Name):
                    self.bindings.setdefault(target.id, []).append(assign.value)
                elif isinstance(target, ast.Tuple) and isinstance(assign.value, ast.Tuple):
                    for name, value in zip(target.elts, assign.value.elts, strict=True):
                        self.bindings.setdefault(name.id, []).append(value)
        self.nodes: list[dict] = []
        self.arguments: dict[str, ast.Call] = {}
        self.read: set[str] = set()
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            kind = _name_of(call)
            first = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
            if kind == "DeclareLaunchArgument":
                self.arguments[first] = call
            elif kind in ("LaunchConfiguration", "_arg") and first is not None:
                self.read.add(first)
            elif kind == "Node":
                self.nodes.append(self._node(call))

    def resolve(self, item: ast.expr) -> ast.expr:
        """A name bound once in the file -> its value (checked statically: no name bound twice)."""
        if isinstance(item, ast.Name):
            bound = self.bindings.get(item.id, [])
            assert len(bound) == 1, f"{self.name}: {item.id} must be assigned exactly once (checked statically)"
            return bound[0]
        return item

    def _node(self, call: ast.Call) -> dict:
        keywords = {k.arg: k.value for k in call.keywords}
        files, parameters, values = [], {}, {}
        listed = keywords.get("parameters", ast.List(elts=[]))
        assert isinstance(listed, ast.List), f"{self.name}: parameters must be a list (checked statically)"
        for item in map(self.resolve, listed.elts):
            if isinstance(item, ast.Call) and _name_of(item) == "_config":
                files.append(item.args[0].value)
                continue
            assert isinstance(item, ast.Dict), f"{self.name}: parameters: _config(file) or dict literals"
            assert None not in item.keys, f"{self.name}: no ** in parameter dicts (checked statically)"
            for key, value in zip(item.keys, item.values, strict=True):
                parameters[key.value], values[key.value] = _value_type(value), value
        return {"package": keywords["package"].value, "executable": keywords["executable"].value,
                "name": keywords["name"].value, "condition": keywords.get("condition"), "files": files,
                "parameters": parameters, "values": values}  # fmt: skip

    def _truth(self, expr: ast.expr, args: dict[str, bool]) -> bool:
        expr = self.resolve(expr)
        assert isinstance(expr, ast.Call), f"{self.name}: unreadable {ast.unparse(expr)}"
        kind, operands = _name_of(expr), expr.args
        if kind == "LaunchConfiguration":
            return args[operands[0].value]
        if kind == "NotSubstitution":
            return not self._truth(operands[0], args)
        if kind == "AndSubstitution":
            return self._truth(operands[0], args) and self._truth(operands[1], args)
        raise AssertionError(f"{self.name}: unreadable condition {ast.unparse(expr)}")

    def runs(self, node: dict, args: dict[str, bool]) -> bool:
        """Whether ``node`` starts with the boolean launch arguments ``args``."""
        condition = node["condition"]
        if condition is None:
            return True
        assert isinstance(condition, ast.Call) and len(condition.args) == 1, ast.unparse(condition)
        holds = self._truth(condition.args[0], args)
        return {"IfCondition": holds, "UnlessCondition": not holds}[_name_of(condition)]

    def defaults(self, finetune: bool = False) -> dict[str, object]:
        """Each launch argument's default, parsed as YAML (as launch_ros does), with ``finetune`` set as given
        (``_by_mode(plain, finetune)``); substitutions (``config_dir``) are left out."""
        defaults: dict[str, object] = {}
        for name, call in self.arguments.items():
            value = {k.arg: k.value for k in call.keywords}.get("default_value")
            if isinstance(value, ast.Call) and _name_of(value) == "_by_mode":
                value = value.args[1 if finetune else 0]
            if isinstance(value, ast.Constant):
                defaults[name] = yaml.safe_load(value.value)
        if "finetune" in defaults:
            defaults["finetune"] = finetune
        return defaults

    def started(self, finetune: bool = False, **given: bool) -> list[dict]:
        """The nodes that start with the default arguments (``finetune`` and ``given`` set as given)."""
        defaults = {k: v for k, v in self.defaults(finetune).items() if isinstance(v, bool)}
        return [node for node in self.nodes if self.runs(node, {**defaults, **given})]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_installed_executables_and_declared_parameters(path):
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    launch = LaunchFile(path)
    assert launch.nodes, "a launch file that starts no node"
    assert launch.read <= launch.arguments.keys(), (
        f"read but not declared: {sorted(launch.read - launch.arguments.keys())}"
    )
    for node in launch.nodes:
        assert node["package"] == "robot_bridge"
        registry = _registry(node["executable"])
        undeclared = node["parameters"].keys() - registry.keys()
        assert not undeclared, f"{path.name}: {node['executable']} does not declare {sorted(undeclared)}"
        for name, value_type in node["parameters"].items():  # ROS refuses a value of another type
            assert value_type is type(registry[name].default), f"{path.name}: {name} is {value_type}"
        # Parameter files: installed, with a section for this node's name; a file never overrides another file's
        # parameter, and a launch argument never overrides a file's (its value in the file would be dead here).
        in_files: set[str] = set()
        for name in node["files"]:
            sections = _parameter_file(name)
            assert set(sections) == {node["name"]}, f"{path.name}: {name} has no section {node['name']} alone"
            assert not in_files & sections[node["name"]].keys(), f"{path.name}: {name} repeats another file's"
            in_files |= sections[node["name"]].keys()
        from_arguments = {name for name, value in node["values"].items() if _is_arg(value)}
        assert not in_files & from_arguments, f"{path.name}: arguments override {sorted(in_files & from_arguments)}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_parameter_file_sets_declared_parameters_of_the_declared_type(path):
    """``config/<executable>.yaml``: the parameters of the node that executable runs, each of the type it declares
    (a float as a float: ROS does not convert 1 to 1.0), and equal to the node's default unless listed in
    ``CONFIG_OVERRIDES``: the nodes' tests test what the graphs run with."""
    registry = _registry(path.stem)
    (section,) = _parameter_file(path.name).values()
    assert section, f"{path.name} sets nothing"
    undeclared = section.keys() - registry.keys()
    assert not undeclared, f"{path.name}: {path.stem} does not declare {sorted(undeclared)}"
    for name, value in section.items():
        default = registry[name].default
        assert _same_type(value, default), f"{path.name}: {name}: {value!r} is not a {type(default).__name__}"
        if name in CONFIG_OVERRIDES.get(path.name, ()):
            assert value != default, f"{path.name}: {name} is no override any more"
        else:
            assert value == default, f"{path.name}: {name} is {value!r}, {path.stem}'s default {default!r}"


CONFIG_OVERRIDES: dict[str, set[str]] = {}
"""Parameter files: where they differ from the node's default on purpose (none yet)."""


def test_every_parameter_is_set_once_by_a_parameter_file_or_the_launch_file():
    """Across the launch files, each started node's parameters: its files and the launch file's dicts set all of
    them, and no parameter comes both from a file and from a launch argument."""
    by_executable: dict[str, dict[str, set[str]]] = {}
    used_files: set[str] = set()
    for path in LAUNCH_FILES:
        for node in LaunchFile(path).nodes:
            said = by_executable.setdefault(node["executable"], {"files": set(), "arguments": set(), "fixed": set()})
            for name in node["files"]:
                said["files"] |= _parameter_file(name)[node["name"]].keys()
                used_files.add(name)
            for name, value in node["values"].items():
                said["arguments" if _is_arg(value) else "fixed"].add(name)
    assert used_files == {p.name for p in CONFIG_FILES}, "a parameter file that no launch file reads"
    for executable, said in by_executable.items():
        both = said["files"] & said["arguments"]
        assert not both, f"{executable}: {sorted(both)} in a parameter file and a launch argument"
        unset = _registry(executable).keys() - said["files"] - said["arguments"] - said["fixed"]
        assert not unset, f"{executable}: {sorted(unset)} in no parameter file and no launch file"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_argument_descriptions_name_the_parameter_they_set(path):
    """A launch argument's description is short and names the node parameters it sets: what a parameter does is
    written once, in its node's ``PARAMS`` (``ros2 param describe``)."""
    launch = LaunchFile(path)
    feeds: dict[str, set[str]] = {}
    for node in launch.nodes:
        for parameter, value in node["values"].items():
            if _is_arg(value):
                feeds.setdefault(value.args[0].value, set()).add(parameter)
    for name, call in launch.arguments.items():
        description = {k.arg: k.value for k in call.keywords}["description"].value
        assert len(description) <= 80, f"{path.name}: {name}: {description!r}"
        missing = [parameter for parameter in feeds.get(name, ()) if parameter not in description]
        assert not missing, f"{path.name}: {name}'s description names no {missing}"


# Where a launch file's argument defaults differ from the nodes' own defaults on purpose, per launch file and
# finetune:=false/true (every other one must not).
LAUNCH_OVERRIDES = {
    ("a1_robot.launch.py", False): {"power_limit_w"},
    ("a1_robot.launch.py", True): {"power_limit_w", "auto_stand_up", "initial_command", "on_learner_lost",
                                   "learner_endpoint"},
    ("emulated.launch.py", False): {"initial_command"},
    ("emulated.launch.py", True): {"initial_command", "learner_endpoint", "mass_scale", "friction", "motor_strength",
                                   "action_latency_s", "sensor_noise"},
}  # fmt: skip


@pytest.mark.parametrize("finetune", [False, True], ids=["plain", "finetune"])
def test_robot_launch_file_starts_safe_and_swaps_only_the_robot_when_emulated(finetune):
    launch = LaunchFile(ROBOT_LAUNCH)
    defaults = launch.defaults(finetune)
    # First-run safety: nothing is sent until dry_run:=false, the power guard is set low, no hidden emulator.
    assert defaults["dry_run"] is True and defaults["emulated"] is False and launch.defaults()["finetune"] is False
    if not finetune:
        assert defaults["power_limit_w"] <= 200.0
        assert defaults["auto_stand_up"] is False and defaults["command"] == [0.0, 0.0, 0.0]
    else:  # on the ground, unattended
        assert defaults["power_limit_w"] <= 400.0
        assert defaults["auto_stand_up"] is True and defaults["on_learner_lost"] == "stand"
    policy_executable = "finetune_actor" if finetune else "policy_node"
    for emulated in (False, True):
        for start_policy in (False, True):
            started = sorted(
                n["executable"] for n in launch.started(finetune, emulated=emulated, start_policy=start_policy)
            )
            expected = ["a1_driver", "estimator"] + ["emulator_node"] * emulated + [policy_executable] * start_policy
            assert started == sorted(expected), (emulated, start_policy)
    # Exactly one driver runs: at the robot (the address in a1_driver.yaml), or (emulated) at the emulator's
    # loopback port; nothing else differs between the two.
    (real,) = [n for n in launch.started(finetune, emulated=False) if n["executable"] == "a1_driver"]
    (loopback,) = [n for n in launch.started(finetune, emulated=True) if n["executable"] == "a1_driver"]
    (emulator,) = [n for n in launch.started(finetune, emulated=True) if n["executable"] == "emulator_node"]
    assert _parameter_file("a1_driver.yaml")["a1_driver"]["robot_ip"] != "127.0.0.1"
    assert "robot_ip" not in real["values"] and "local_ip" not in real["values"]
    assert loopback["files"] == real["files"] == ["a1_driver.yaml"]
    unparsed = lambda node: {k: ast.unparse(v) for k, v in node["values"].items()}  # noqa: E731
    assert unparsed(loopback) == {**unparsed(real), "robot_ip": "'127.0.0.1'", "local_ip": "'127.0.0.1'"}
    constants = {k: v.value for k, v in emulator["values"].items() if isinstance(v, ast.Constant)}
    assert constants == {"interface": "udp", "udp_ip": "127.0.0.1"}
    for driver_side, emulator_side in (("robot_port", "udp_port"), ("foot_force_scale", "foot_force_scale")):
        assert unparsed(real)[driver_side] == unparsed(emulator)[emulator_side]
    assert unparsed(real)["dry_run"] == "_arg('dry_run', bool)"
    # The policy's odom is the estimator's (no remapping to a ground truth that a real robot lacks).
    (estimator,) = [n for n in launch.nodes if n["executable"] == "estimator"]
    assert estimator["condition"] is None
    assert "remappings" not in launch.source and "ground_truth" not in launch.source.split('"""', 2)[2]


@pytest.mark.parametrize("case", sorted(LAUNCH_OVERRIDES), ids=lambda c: f"{c[0]}-{'finetune' if c[1] else 'plain'}")
def test_launch_defaults_are_the_nodes_defaults_unless_overridden_on_purpose(case):
    name, finetune = case
    launch = LaunchFile(REPO / "launch" / name)
    defaults = launch.defaults(finetune)
    checked, overridden = set(), set()
    for node in launch.started(finetune):
        registry = {p.name: p.default for p in _registry(node["executable"]).values()}
        for parameter, value in node["values"].items():
            if not _is_arg(value) or value.args[0].value not in defaults:  # required (policy_path)
                continue
            argument = value.args[0].value
            if parameter in LAUNCH_OVERRIDES[case]:  # an override that no longer differs is stale
                assert defaults[argument] != registry[parameter], f"{name}: {parameter} is no override any more"
                overridden.add(parameter)
                continue
            assert defaults[argument] == registry[parameter], (
                f"{name}: argument {argument} defaults to {defaults[argument]!r} but {node['executable']}'s "
                f"{parameter} to {registry[parameter]!r}; make them equal or list it in LAUNCH_OVERRIDES"
            )
            checked.add(parameter)
    assert overridden == LAUNCH_OVERRIDES[case]
    assert "contract_variant" in checked and (name != ROBOT_LAUNCH.name or "dry_run" in checked)


def test_emulated_fine_tuning_defaults_to_the_pipelines_dynamics_gap():
    from finetune.pipeline import DEFAULT_GAP

    defaults = LaunchFile(REPO / "launch" / "emulated.launch.py").defaults(finetune=True)
    assert {name: defaults[name] for name in DEFAULT_GAP} == DEFAULT_GAP


def test_the_run_entry_points_read_the_installed_parameter_files():
    """``robot_bridge.params.load_config`` reads the installed copies, layered as the launch files layer them."""
    from robot_bridge.params import config_directory, load_config

    assert config_directory() == PREFIX / "share" / "robot_bridge" / "config"
    actor = load_config("policy_node", "policy_node.yaml", "finetune_actor.yaml")
    sections = _parameter_file("policy_node.yaml")["policy_node"], _parameter_file("finetune_actor.yaml")["policy_node"]
    assert actor == {**sections[0], **sections[1]}
    with pytest.raises(ValueError, match="no 'a1_driver: ros__parameters:' section"):
        load_config("a1_driver", "policy_node.yaml")
