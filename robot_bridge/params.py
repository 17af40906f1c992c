"""ROS parameters as data: each node lists its :class:`Param` s, declares them all with descriptions and reads
them back in one call. The lists are also what the launch-file test checks launch parameters against.

A description is written once: where a node's parameter is a field of a config dataclass
(:class:`~robot_bridge.safety.SafetyConfig`, ...), :func:`from_fields` takes the field's docstring. The values a
deployed graph runs with are in the parameter files ``config/<node>.yaml`` (installed in the package share, see
:func:`config_directory`), which the launch files pass to the nodes and :func:`load_config` reads for the
``run_*`` entry points that run the same graphs without ``ros2 launch``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from a1_common.cli import field_docs


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    """Also fixes the type (float defaults must be floats: ROS does not convert 1 to 1.0)."""
    description: str


def from_fields(
    config: Any,
    names: Sequence[str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    notes: Mapping[str, str] | None = None,
) -> tuple[Param, ...]:
    """One :class:`Param` per field of the dataclass instance ``config`` (or per field in ``names``): the field's
    value as the default and its docstring as the description. ``defaults`` replaces a value that ROS cannot hold
    (``None``); ``notes`` are appended to a field's docstring (or are its description where it has none)."""
    docs, defaults, notes = field_docs(type(config)), defaults or {}, notes or {}
    params = []
    for name in names or [f.name for f in dataclasses.fields(config)]:
        description = " ".join(text for text in (docs.get(name), notes.get(name)) if text)
        if not description:
            raise ValueError(f"{type(config).__name__}.{name} has no docstring and no note: no parameter description")
        params.append(Param(name, defaults.get(name, getattr(config, name)), description))
    return tuple(params)


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare every parameter (read-only: the nodes read them once, at start) and return their values."""
    node.declare_parameters(
        "",
        [(p.name, p.default, ParameterDescriptor(description=p.description, read_only=True)) for p in params],
    )
    return {p.name: node.get_parameter(p.name).value for p in params}


PACKAGE = "robot_bridge"


def share_directory() -> Path:
    """``<prefix>/share/robot_bridge``: the package's launch and parameter files, installed with it (pip's data
    files) under the environment's prefix, where ``ros2 launch`` finds them with the prefix on
    ``AMENT_PREFIX_PATH``. Where that folder is missing (another install prefix): the ament index's."""
    share = Path(sys.prefix) / "share" / PACKAGE
    if share.is_dir():
        return share
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError) as exc:  # PackageNotFoundError is a KeyError
        raise FileNotFoundError(
            f"{share} does not exist and the ament index has no {PACKAGE}: the package's data files are not "
            "installed (`pip install -e .`, as scripts/setup.sh does)"
        ) from exc


def config_directory() -> Path:
    """The installed parameter files: ``share/robot_bridge/config``, copied from the repository's ``config/`` at
    install time (re-run ``scripts/setup.sh`` after editing one)."""
    return share_directory() / "config"


def load_config(node_name: str, *files: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The parameters that ``files`` (names in ``directory``, default :func:`config_directory`) give the node
    ``node_name``: each file's ``<node_name>: ros__parameters:`` section, later files overriding earlier ones, as
    ``ros2 launch`` applies the same files."""
    values: dict[str, Any] = {}
    for name in files:
        path = Path(directory or config_directory()) / name
        document = yaml.safe_load(path.read_text()) or {}
        section = document.get(node_name) or document.get(f"/{node_name}")
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ValueError(f"{path}: no '{node_name}: ros__parameters:' section")
        values.update(section["ros__parameters"])
    return values


@dataclass(frozen=True)
class Timing:
    """Which of a node's parameters are wall-clock quantities (for :func:`at_speed`)."""

    rates: tuple[str, ...] = ()
    """Per wall-clock second (Hz, rad/s): multiplied by the speed."""
    durations: tuple[str, ...] = ()
    """Wall-clock durations (s, or robot ticks of wall-clock time): divided by the speed."""


def at_speed(params: Sequence[Param], timing: Timing, speed: float, values: dict[str, Any] | None = None) -> dict:
    """``values`` (parameter overrides; unset ones start from their defaults) for a node that drives an emulated
    robot running at ``speed`` simulated seconds per wall-clock second: its rates and timeouts scaled so that, in
    simulated time, the node behaves as it does at 1x on a real robot. ``speed == 1`` returns ``values`` as is.

    A CPU that cannot keep a 500 Hz loop and a 50 Hz policy on time (a shared 2-core VM: 30-60% CPU steal and
    10-30 ms late wake-ups measured) can still run the same graph at half speed: what it checks then is the graph's
    function, not whether the machine holds real time."""
    values = dict(values or {})
    if speed == 1.0:
        return values
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    defaults = {p.name: p.default for p in params}
    for name in timing.rates:
        values[name] = float(values.get(name, defaults[name])) * speed
    for name in timing.durations:
        kind = type(defaults[name])
        values[name] = kind(values.get(name, defaults[name]) / speed)
    return values
