"""The emulated A1 and the policy node: ``ros2 launch robot_bridge emulated.launch.py policy_path:=policy.onnx``.

Arguments (``ros2 launch robot_bridge emulated.launch.py --show-args``): the policy file, the velocity command,
rates (``speed`` runs the emulator faster than real time; set ``rate_hz`` to ``speed`` times the contract's
50 Hz with it), the dynamics gap and the safety limits. Where ``ros2 launch`` is not installed (CI, a venv with
the ROS 2 wheels) the same graph runs with ``python -m robot_bridge.run_emulated``.
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
        DeclareLaunchArgument("policy_path", description="ONNX policy from `python -m deploy.export` (required)"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3", description="contract of robot + policy"),
        DeclareLaunchArgument("command", default_value="[0.5, 0.0, 0.0]",
                              description="velocity command [vx m/s, vy m/s, yaw rate rad/s] until cmd_vel"),
        DeclareLaunchArgument("speed", default_value="1.0", description="simulated seconds per wall-clock second"),
        DeclareLaunchArgument("rate_hz", default_value="0.0",
                              description="policy rate (Hz); 0 = the contract's; with speed s use s * 50"),
        DeclareLaunchArgument("mass_scale", default_value="1.0", description="gap: trunk mass multiplier"),
        DeclareLaunchArgument("friction", default_value="-1.0", description="gap: foot friction (< 0: contract's)"),
        DeclareLaunchArgument("motor_strength", default_value="1.0", description="gap: PD torque multiplier"),
        DeclareLaunchArgument("action_latency_s", default_value="0.0", description="gap: command delay (s)"),
        DeclareLaunchArgument("sensor_noise", default_value="0.0", description="gap: noise, multiple of training's"),
        DeclareLaunchArgument("watchdog_timeout_s", default_value="0.1", description="safety: stale-state timeout"),
        DeclareLaunchArgument("max_delta_per_tick", default_value="0.5", description="safety: rad per tick"),
        DeclareLaunchArgument("use_soft_limits", default_value="true", description="safety: soft or hard limits"),
    ]  # fmt: skip
    emulator = Node(
        package="robot_bridge",
        executable="emulator_node",
        name="emulator_node",
        output="screen",
        parameters=[
            {
                "contract_variant": _arg("contract_variant"),
                "speed": _arg("speed", float),
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
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[
            {
                "policy_path": _arg("policy_path"),
                "contract_variant": _arg("contract_variant"),
                "initial_command": _arg("command", None),
                "rate_hz": _arg("rate_hz", float),
                "watchdog_timeout_s": _arg("watchdog_timeout_s", float),
                "max_delta_per_tick": _arg("max_delta_per_tick", float),
                "use_soft_limits": _arg("use_soft_limits", bool),
            }
        ],
    )
    return LaunchDescription([*arguments, emulator, policy])
