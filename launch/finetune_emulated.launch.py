"""Fine-tuning on the emulated A1: ``ros2 launch robot_bridge finetune_emulated.launch.py policy_path:=policy.onnx
learner_endpoint:=tcp://WORKSTATION:5555 keys_dir:=keys``.

The emulator node (with a dynamics gap) and the policy node in fine-tuning mode: it explores, records
transitions, streams them to the learner over CurveZMQ and swaps in the policies the learner publishes; after a
fall it calls the emulator's ``~/reset`` and starts a new episode. Start the learner first, on the workstation:
``python -m finetune learner --bundle BUNDLE --keys keys``. Keys: ``python -m finetune keys`` (see README). Where
``ros2 launch`` is not installed the same graph runs with ``python -m finetune actor``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def _arg(name, value_type=str):
    """A launch argument as a node parameter of the type the node declares (None: parsed as YAML)."""
    return ParameterValue(LaunchConfiguration(name), value_type=value_type)


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("policy_path", description="ONNX policy to start from (`python -m deploy.export`)"),
        DeclareLaunchArgument("learner_endpoint", default_value="tcp://127.0.0.1:5555",
                              description="the learner's zmq endpoint; empty: record returns only"),
        DeclareLaunchArgument("keys_dir", default_value="keys", description="<actor_id>.key_secret + learner.key"),
        DeclareLaunchArgument("actor_id", default_value="a1", description="this robot's name (its key pair)"),
        DeclareLaunchArgument("spool_dir", default_value="finetune_spool", description="durable transition outbox"),
        DeclareLaunchArgument("policy_dir", default_value="finetune_policies", description="received policies"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3", description="contract of robot + policy"),
        DeclareLaunchArgument("command", default_value="[0.5, 0.0, 0.0]",
                              description="velocity command [vx m/s, vy m/s, yaw rate rad/s]"),
        DeclareLaunchArgument("command_mode", default_value="fixed", description="fixed, or sample per episode"),
        DeclareLaunchArgument("episode_steps", default_value="0", description="0: the contract's episode length"),
        DeclareLaunchArgument("on_learner_lost", default_value="keep", description="keep (last policy) or stand"),
        DeclareLaunchArgument("mass_scale", default_value="1.15", description="gap: trunk mass multiplier"),
        DeclareLaunchArgument("friction", default_value="0.6", description="gap: foot friction (< 0: contract's)"),
        DeclareLaunchArgument("motor_strength", default_value="0.85", description="gap: PD torque multiplier"),
        DeclareLaunchArgument("action_latency_s", default_value="0.01", description="gap: command delay (s)"),
        DeclareLaunchArgument("sensor_noise", default_value="1.0", description="gap: noise, multiple of training's"),
        DeclareLaunchArgument("watchdog_timeout_s", default_value="0.1", description="safety: stale-state timeout"),
    ]  # fmt: skip
    emulator = Node(
        package="robot_bridge",
        executable="emulator_node",
        name="emulator_node",
        output="screen",
        parameters=[
            {
                "contract_variant": _arg("contract_variant"),
                "mass_scale": _arg("mass_scale", float),
                "friction": _arg("friction", float),
                "motor_strength": _arg("motor_strength", float),
                "action_latency_s": _arg("action_latency_s", float),
                "sensor_noise": _arg("sensor_noise", float),
            }
        ],
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
                "watchdog_timeout_s": _arg("watchdog_timeout_s", float),
                "learner_endpoint": _arg("learner_endpoint"),
                "keys_dir": _arg("keys_dir"),
                "actor_id": _arg("actor_id"),
                "spool_dir": _arg("spool_dir"),
                "policy_dir": _arg("policy_dir"),
                "command_mode": _arg("command_mode"),
                "episode_steps": _arg("episode_steps", int),
                "on_learner_lost": _arg("on_learner_lost"),
                "auto_reset_service": "/emulator_node/reset",
            }
        ],
    )
    return LaunchDescription([*arguments, emulator, policy])
