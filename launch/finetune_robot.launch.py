"""Fine-tuning on the real A1: ``ros2 launch robot_bridge finetune_robot.launch.py policy_path:=policy.onnx
learner_endpoint:=tcp://WORKSTATION:5555 keys_dir:=keys dry_run:=false``.

The graph of ``a1_robot.launch.py`` (``a1_driver`` + ``estimator`` + ``policy_node``; ``emulated:=true`` swaps the
robot for the UDP emulator on 127.0.0.1) with the policy node in fine-tuning mode: it explores, records
transitions (the reward's velocity terms from the estimator's ``odom``), streams them to the learner over
CurveZMQ and swaps in the policies the learner publishes. A real robot has no reset service: after a fall the
policy node stands up from the belly by itself (``auto_stand_up:=true``; on its back or side it refuses and
waits for the operator's ``/policy_node/stand_up``) and soft-starts a new episode. When the learner is
unreachable it holds the default pose (``on_learner_lost:=stand``) instead of running a stale policy unattended.

Run this only after ``a1_robot.launch.py`` walked the robot on the ground: ``dry_run`` is still true by default,
and ``power_limit_w`` defaults to 400 W, the on-the-ground limit (see a1_robot.launch.py). Start the learner
first, on the workstation: ``python -m finetune learner --bundle BUNDLE --keys keys --endpoint
tcp://WORKSTATION:5555``. Keys: ``python -m finetune keys`` (see finetune/PROTOCOL.md).
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
        DeclareLaunchArgument("policy_path", description="ONNX policy to start from (`python -m deploy.export`)"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3", description="contract of robot + policy"),
        DeclareLaunchArgument("emulated", default_value="false",
                              description="true: also start the UDP emulator on 127.0.0.1 and drive it instead"),
        # ---- fine-tuning ----
        DeclareLaunchArgument("learner_endpoint", default_value="tcp://127.0.0.1:5555",
                              description="the learner's zmq endpoint; empty: record returns only"),
        DeclareLaunchArgument("keys_dir", default_value="keys", description="<actor_id>.key_secret + learner.key"),
        DeclareLaunchArgument("actor_id", default_value="a1", description="this robot's name (its key pair)"),
        DeclareLaunchArgument("spool_dir", default_value="finetune_spool", description="durable transition outbox"),
        DeclareLaunchArgument("policy_dir", default_value="finetune_policies", description="received policies"),
        DeclareLaunchArgument("command", default_value="[0.5, 0.0, 0.0]",
                              description="velocity command [vx m/s, vy m/s, yaw rate rad/s]"),
        DeclareLaunchArgument("command_mode", default_value="fixed", description="fixed, or sample per episode"),
        DeclareLaunchArgument("episode_steps", default_value="0", description="0: the contract's episode length"),
        DeclareLaunchArgument("explore", default_value="true", description="sample actions (false: deterministic)"),
        DeclareLaunchArgument("on_learner_lost", default_value="stand", description="stand (default pose) or keep"),
        DeclareLaunchArgument("auto_stand_up", default_value="true", description="after a fall, stand up by itself"),
        # ---- the driver ----
        DeclareLaunchArgument("robot_ip", default_value="192.168.123.10", description="the A1's low-level address"),
        DeclareLaunchArgument("robot_port", default_value="8007", description="the A1's low-level UDP port"),
        DeclareLaunchArgument("local_ip", default_value="192.168.123.162", description="this PC on the robot's LAN"),
        DeclareLaunchArgument("local_port", default_value="8080", description="local UDP port (SDK default 8080)"),
        DeclareLaunchArgument("foot_force_scale", default_value="1.0",
                              description="N per raw footForce count (calibrate: standing, sum = m g, ~122 N)"),
        DeclareLaunchArgument("foot_force_threshold", default_value="0.0",
                              description="raw footForce counts at or below which a foot reads 0 N"),
        DeclareLaunchArgument("state_period_ticks", default_value="2000",
                              description="LowState tick step per packet (2000: us at 500 Hz; 2 if ms)"),
        DeclareLaunchArgument("dry_run", default_value="true", description="true: send nothing"),
        DeclareLaunchArgument("power_limit_w", default_value="400.0",
                              description="driver power guard, sum |tau dq| (W), on the ground"),
        DeclareLaunchArgument("torque_limit_nm", default_value="0.0",
                              description="driver torque guard (N m); 0 = the contract's effort limit"),
        DeclareLaunchArgument("command_timeout_s", default_value="0.1", description="driver: targets older: damping"),
        DeclareLaunchArgument("state_timeout_s", default_value="0.1", description="driver: no state this long: damp"),
        # ---- the policy node's safety layer ----
        DeclareLaunchArgument("watchdog_timeout_s", default_value="0.1", description="safety: stale-state timeout"),
        DeclareLaunchArgument("max_delta_per_tick", default_value="0.5", description="safety: rad per tick"),
        DeclareLaunchArgument("fall_tilt_rad", default_value="1.0", description="safety: tilt that counts as a fall"),
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
        "command_timeout_s": _arg("command_timeout_s", float),
        "state_timeout_s": _arg("state_timeout_s", float),
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
        executable="finetune_actor",
        name="policy_node",
        output="screen",
        parameters=[
            {
                "policy_path": _arg("policy_path"),
                "contract_variant": _arg("contract_variant"),
                "initial_command": _arg("command", None),
                "learner_endpoint": _arg("learner_endpoint"),
                "keys_dir": _arg("keys_dir"),
                "actor_id": _arg("actor_id"),
                "spool_dir": _arg("spool_dir"),
                "policy_dir": _arg("policy_dir"),
                "command_mode": _arg("command_mode"),
                "episode_steps": _arg("episode_steps", int),
                "explore": _arg("explore", bool),
                "on_learner_lost": _arg("on_learner_lost"),
                "auto_stand_up": _arg("auto_stand_up", bool),
                "watchdog_timeout_s": _arg("watchdog_timeout_s", float),
                "max_delta_per_tick": _arg("max_delta_per_tick", float),
                "fall_tilt_rad": _arg("fall_tilt_rad", float),
            }
        ],
    )
    return LaunchDescription([*arguments, emulator, driver, emulated_driver, estimator, policy])
