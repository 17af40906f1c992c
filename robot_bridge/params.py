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
