"""Progress bars and ROS 2 log lines (written by rcutils from C to file descriptor 2) on one terminal."""

from __future__ import annotations

import os
import re
import sys

import pytest

from finetune.console import progress


@pytest.fixture
def ros_node():
    import rclpy
    from rclpy.node import Node

    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    node = Node("console_test", context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_ros_log_lines_are_written_above_the_bar_not_into_it(ros_node, capfd):
    with progress("fine-tuning", 10, "emulated s") as bar:
        bar(3, {"episodes": 1, "last_return": 5.1, "policy_version": 0, "transitions": 150})
        ros_node.get_logger().info("mid-bar line")
        for i in range(200):  # more than one read of the pipe; none may be lost or split
            ros_node.get_logger().warning(f"burst {i:03d}")
        print("python stderr line", file=sys.stderr)
        bar(4)
    err = capfd.readouterr().err
    # tqdm.write clears the bar (\r, blanks, \r) and writes the whole line; into the bar it would follow "3/10 [...]"
    assert re.search(r"\r *\r\[INFO\] \[[\d.]+\] \[console_test\]: mid-bar line\n", err), repr(err[:2000])
    assert re.search(r"fine-tuning: +30%.*episodes=1", err)
    bursts = re.findall(r"\[WARN\] \[[\d.]+\] \[console_test\]: burst (\d{3})\n", err)
    assert bursts == [f"{i:03d}" for i in range(200)]
    assert "python stderr line\n" in err
    # afterwards file descriptor 2 is the terminal again, not the pipe
    os.write(2, b"after the bar\n")
    ros_node.get_logger().info("after the bar too")
    err = capfd.readouterr().err
    assert err.startswith("after the bar\n") and "after the bar too\n" in err


def test_the_bar_closes_and_stderr_is_restored_when_the_run_raises(capfd):
    saved = os.fstat(2)
    with pytest.raises(RuntimeError, match="the executor stopped"), progress("zero-shot", 3, "episodes") as bar:
        bar(1)
        os.write(2, b"last words\n")
        raise RuntimeError("the executor stopped")
    assert (os.fstat(2).st_ino, os.fstat(2).st_dev) == (saved.st_ino, saved.st_dev)
    assert "last words\n" in capfd.readouterr().err
