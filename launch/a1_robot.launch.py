"""The real A1: ``ros2 launch robot_bridge a1_robot.launch.py policy_path:=policy.onnx [dry_run:=false]``.

Nodes: ``a1_driver`` (the A1's low-level UDP protocol), ``estimator`` (the body velocity, published as ``odom``,
from the driver's ``joint_states``, ``imu`` and ``foot_contacts``) and ``policy_node``. First-run safety defaults:

* ``dry_run:=true``: the driver builds every command and sends none (``/a1_driver/diagnostics``: ``would_send``).
  Set ``dry_run:=false`` only with the robot hung up and the e-stop (``/policy_node/estop``) at hand;
* ``power_limit_w:=150``: the driver latches damping when ``sum |tau dq|`` stays above it for ``guard_persist_s``
  (0.1 s). A hung leg swinging to the default pose takes far less; the emulated A1 walking 0.5 m/s on the ground
  holds above 150 W for 0.1 s at times (the sustained 0.1-s minimum reaches 188 W), so on the ground raise it
  (``power_limit_w:=400``). The SDK's own ``Safety`` class says a 100 W limit trips "with 4 hands shaking";
* ``auto_stand_up:=false``: after a fall the policy node damps and waits for the operator (``~/stand_up``);
* ``command:=[0.0, 0.0, 0.0]``: stepping in place until ``cmd_vel`` says otherwise;
* ``start_policy:=false`` starts the driver and the estimator only: the driver sends damping (Kp 0), so with
  ``dry_run:=false`` the state flows (the A1 answers commands) while the joints stay free to move by hand.

``emulated:=true`` also starts ``emulator_node`` with ``interface: udp`` on 127.0.0.1:``robot_port`` and points
the driver there (robot_ip and local_ip 127.0.0.1): the same graph on a laptop with only the robot swapped
(ground truth on ``ground_truth/odom``). Nothing else changes: ``dry_run:=false`` is still needed to move it.
Without ``ros2 launch`` (the PyPI wheels) the emulated graph runs as ``python -m robot_bridge.run_robot_graph``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def _arg(name, value_type=str):
    """A launch argument as a node parameter of the type the node declares (None: parsed as YAML)."""
    return ParameterValue(LaunchConfiguration(name), value_type=value_type)


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("policy_path", description="ONNX policy from `python -m deploy.export` (required)"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3", description="contract of robot + policy"),
        DeclareLaunchArgument("command", default_value="[0.0, 0.0, 0.0]",
                              description="velocity command [vx m/s, vy m/s, yaw rate rad/s] until cmd_vel"),
        DeclareLaunchArgument("emulated", default_value="false",
                              description="true: also start the UDP emulator on 127.0.0.1 and drive it instead"),
        DeclareLaunchArgument("start_policy", default_value="true",
                              description="false: driver + estimator only (damping: read the state, move by hand)"),
        # ---- the driver: where the robot is ----
        DeclareLaunchArgument("robot_ip", default_value="192.168.123.10", description="the A1's low-level address"),
        DeclareLaunchArgument("robot_port", default_value="8007", description="the A1's low-level UDP port"),
        DeclareLaunchArgument("local_ip", default_value="192.168.123.162", description="this PC on the robot's LAN"),
        DeclareLaunchArgument("local_port", default_value="8080", description="local UDP port (SDK default 8080)"),
        # ---- the driver: its guards ----
        DeclareLaunchArgument("foot_force_scale", default_value="1.0",
                              description="N per raw footForce count (calibrate: standing, sum = m g, ~122 N)"),
        DeclareLaunchArgument("foot_force_threshold", default_value="0.0",
                              description="raw footForce counts at or below which a foot reads 0 N"),
        DeclareLaunchArgument("state_period_ticks", default_value="2000",
                              description="LowState tick step per packet (2000: us at 500 Hz; 2 if ms)"),
        DeclareLaunchArgument("dry_run", default_value="true", description="true: send nothing (first run)"),
        DeclareLaunchArgument("power_limit_w", default_value="150.0",
                              description="driver power guard, sum |tau dq| (W): 150 hung, ~400 on the ground"),
        DeclareLaunchArgument("torque_limit_nm", default_value="0.0",
                              description="driver torque guard (N m); 0 = the contract's effort limit"),
        DeclareLaunchArgument("guard_persist_s", default_value="0.1", description="guard hits this long: damping"),
        DeclareLaunchArgument("command_timeout_s", default_value="0.1", description="driver: targets older: damping"),
        DeclareLaunchArgument("state_timeout_s", default_value="0.1", description="driver: no state this long: damp"),
        DeclareLaunchArgument("damping_kd", default_value="2.0", description="Kd of the damping command (N m s/rad)"),
        # ---- the policy node's safety layer ----
        DeclareLaunchArgument("auto_stand_up", default_value="false",
                              description="after a fall, stand up from the belly by itself (false: ~/stand_up)"),
        DeclareLaunchArgument("watchdog_timeout_s", default_value="0.1", description="safety: stale-state timeout"),
        DeclareLaunchArgument("max_delta_per_tick", default_value="0.5", description="safety: rad per tick"),
        DeclareLaunchArgument("fall_tilt_rad", default_value="1.0", description="safety: tilt that counts as a fall"),
        DeclareLaunchArgument("soft_start_speed", default_value="0.5", description="safety: soft start (rad/s)"),
        DeclareLaunchArgument("soft_start_hold_s", default_value="0.5", description="safety: hold at the default pose"),
        DeclareLaunchArgument("use_soft_limits", default_value="true", description="safety: soft or hard limits"),
    ]  # fmt: skip
    emulated = LaunchConfiguration("emulated")
    emulator = Node(
        package="robot_bridge",
        executable="emulator_node",
        name="emulator_node",
        output="screen",
        condition=IfCondition(emulated),
        parameters=[
            {
                "contract_variant": _arg("contract_variant"),
                "interface": "udp",
                "udp_ip": "127.0.0.1",
                "udp_port": _arg("robot_port", int),
                "foot_force_scale": _arg("foot_force_scale", float),
            }
        ],
    )
    driver_params = {
        "contract_variant": _arg("contract_variant"),
        "robot_port": _arg("robot_port", int),
        "local_port": _arg("local_port", int),
        "dry_run": _arg("dry_run", bool),
        "state_period_ticks": _arg("state_period_ticks", int),
        "foot_force_scale": _arg("foot_force_scale", float),
        "foot_force_threshold": _arg("foot_force_threshold", float),
        "power_limit_w": _arg("power_limit_w", float),
        "torque_limit_nm": _arg("torque_limit_nm", float),
        "guard_persist_s": _arg("guard_persist_s", float),
        "command_timeout_s": _arg("command_timeout_s", float),
        "state_timeout_s": _arg("state_timeout_s", float),
        "damping_kd": _arg("damping_kd", float),
    }
    driver = Node(
        package="robot_bridge",
        executable="a1_driver",
        name="a1_driver",
        output="screen",
        condition=UnlessCondition(emulated),
        parameters=[driver_params, {"robot_ip": _arg("robot_ip"), "local_ip": _arg("local_ip")}],
    )
    emulated_driver = Node(
        package="robot_bridge",
        executable="a1_driver",
        name="a1_driver",
        output="screen",
        condition=IfCondition(emulated),
        parameters=[driver_params, {"robot_ip": "127.0.0.1", "local_ip": "127.0.0.1"}],
    )
    estimator = Node(
        package="robot_bridge",
        executable="estimator",
        name="estimator",
        output="screen",
        parameters=[{"contract_variant": _arg("contract_variant")}],
    )
    policy = Node(
        package="robot_bridge",
        executable="policy_node",
        name="policy_node",
        output="screen",
        condition=IfCondition(LaunchConfiguration("start_policy")),
        parameters=[
            {
                "policy_path": _arg("policy_path"),
                "contract_variant": _arg("contract_variant"),
                "initial_command": _arg("command", None),
                "auto_stand_up": _arg("auto_stand_up", bool),
                "watchdog_timeout_s": _arg("watchdog_timeout_s", float),
                "max_delta_per_tick": _arg("max_delta_per_tick", float),
                "fall_tilt_rad": _arg("fall_tilt_rad", float),
                "soft_start_speed": _arg("soft_start_speed", float),
                "soft_start_hold_s": _arg("soft_start_hold_s", float),
                "use_soft_limits": _arg("use_soft_limits", bool),
            }
        ],
    )
    return LaunchDescription([*arguments, emulator, driver, emulated_driver, estimator, policy])
