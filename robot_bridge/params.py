"""ROS parameters as data: each node lists its :class:`Param` s, declares them all with descriptions and reads
them back in one call. The lists are also what the launch-file test checks launch parameters against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    """Also fixes the type (float defaults must be floats: ROS does not convert 1 to 1.0)."""
    description: str


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare every parameter (read-only: the nodes read them once, at start) and return their values."""
    node.declare_parameters(
        "",
        [(p.name, p.default, ParameterDescriptor(description=p.description, read_only=True)) for p in params],
    )
    return {p.name: node.get_parameter(p.name).value for p in params}


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
