"""ROS 2 bridge for the A1: policy node behind a safety layer, and an emulated A1 (MuJoCo).

Plain modules (no ROS): :mod:`~robot_bridge.safety`, :mod:`~robot_bridge.observation`,
:mod:`~robot_bridge.control`, :mod:`~robot_bridge.emulator`. ROS 2 nodes: :mod:`~robot_bridge.policy_node`,
:mod:`~robot_bridge.emulator_node`; :mod:`~robot_bridge.run_emulated` runs both in one process.
"""
