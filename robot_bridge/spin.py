"""How every node's ``main`` runs: spin until Ctrl-C or an external shutdown, then clean up."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_until_shutdown(node: Node) -> int:
    """Spin ``node`` on a single-threaded executor; destroy it and shut rclpy down on the way out."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_node(
    make: Callable[[], Node], name: str, refused: tuple[type[BaseException], ...] = (), args: list[str] | None = None
) -> int:
    """A node's ``main``: init rclpy, build the node (an exception in ``refused`` is a clear one-line refusal and
    exit status 1, not a traceback), then :func:`spin_until_shutdown`."""
    rclpy.init(args=args)
    try:
        node = make()
    except refused as exc:
        print(f"{name}: refusing to start: {exc}", flush=True)
        rclpy.try_shutdown()
        return 1
    return spin_until_shutdown(node)
