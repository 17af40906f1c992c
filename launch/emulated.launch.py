"""The emulated A1 and the policy node: ``ros2 launch robot_bridge emulated.launch.py policy_path:=policy.onnx
[finetune:=true learner_endpoint:=tcp://WORKSTATION:5555 keys_dir:=keys]``.

Nodes: ``emulator_node`` (the robot, driven over ROS topics) and the policy node: ``policy_node``, or with
``finetune:=true`` the fine-tuning actor (executable ``finetune_actor``, also named ``policy_node``): it explores,
records transitions, streams them to the learner over CurveZMQ and swaps in the policies the learner publishes;
after a fall it calls the emulator's ``~/reset`` and starts a new episode. Start the learner first, on the
workstation: ``python -m finetune learner --bundle BUNDLE --keys keys``. Keys: ``python -m finetune keys`` (see
README).

Each node reads its parameters from ``config/<node>.yaml`` in the package share (``emulator_node.yaml``,
``policy_node.yaml``; the actor ``finetune_actor.yaml`` over ``policy_node.yaml``; ``config_dir:=DIR`` reads the
same files from ``DIR``). The launch arguments (``--show-args``) are the per-run choices, which those files leave
out: the policy file, the velocity command, rates (``speed`` runs the emulator faster than real time; set
``rate_hz`` to ``speed`` times the contract's 50 Hz with it), the dynamics gap and, with ``finetune:=true``, the
actor's. With ``finetune:=true`` the gap defaults to the fine-tuning pipeline's (``finetune.pipeline.DEFAULT_GAP``:
heavier trunk, weaker motors, less friction, 10 ms latency, training sensor noise) instead of none.

Where ``ros2 launch`` is not installed (CI, a venv with the ROS 2 wheels) the same graph runs with
``python -m robot_bridge.run_emulated``, and with ``finetune:=true`` with ``python -m finetune actor``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import IfElseSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _arg(name, value_type=str):
    """A launch argument as a node parameter of the type the node declares (None: parsed as YAML)."""
    return ParameterValue(LaunchConfiguration(name), value_type=value_type)


def _config(name):
    """A node's parameter file in ``config_dir``."""
    return PathJoinSubstitution([LaunchConfiguration("config_dir"), name])


def _by_mode(plain, finetune):
    """A launch argument's default: ``plain``, or ``finetune`` with ``finetune:=true``."""
    return IfElseSubstitution(LaunchConfiguration("finetune"), if_value=finetune, else_value=plain)


def generate_launch_description():
    installed_config = PathJoinSubstitution([FindPackageShare("robot_bridge"), "config"])
    arguments = [
        DeclareLaunchArgument("policy_path", description="policy_node policy_path: ONNX file (required)"),
        DeclareLaunchArgument("finetune", default_value="false",
                              description="true: the fine-tuning actor (finetune_actor) instead of policy_node"),
        DeclareLaunchArgument("config_dir", default_value=installed_config,
                              description="folder of the nodes' parameter files (<node>.yaml)"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3",
                              description="every node's contract_variant"),
        DeclareLaunchArgument("command", default_value="[0.5, 0.0, 0.0]",
                              description="policy_node initial_command [vx m/s, vy m/s, yaw rate rad/s]"),
        DeclareLaunchArgument("rate_hz", default_value="0.0", description="policy_node rate_hz (with speed s: s * 50)"),
        # ---- the emulator ----
        DeclareLaunchArgument("speed", default_value="1.0", description="emulator_node speed"),
        DeclareLaunchArgument("mass_scale", default_value=_by_mode("1.0", "1.15"),
                              description="emulator_node mass_scale"),
        DeclareLaunchArgument("friction", default_value=_by_mode("-1.0", "0.6"), description="emulator_node friction"),
        DeclareLaunchArgument("motor_strength", default_value=_by_mode("1.0", "0.85"),
                              description="emulator_node motor_strength"),
        DeclareLaunchArgument("action_latency_s", default_value=_by_mode("0.0", "0.01"),
                              description="emulator_node action_latency_s"),
        DeclareLaunchArgument("sensor_noise", default_value=_by_mode("0.0", "1.0"),
                              description="emulator_node sensor_noise"),
        # ---- the fine-tuning actor (finetune:=true) ----
        DeclareLaunchArgument("learner_endpoint", default_value="tcp://127.0.0.1:5555",
                              description="finetune_actor learner_endpoint (empty: record returns only)"),
        DeclareLaunchArgument("keys_dir", default_value="keys", description="finetune_actor keys_dir"),
        DeclareLaunchArgument("actor_id", default_value="a1", description="finetune_actor actor_id"),
        DeclareLaunchArgument("spool_dir", default_value="finetune_spool", description="finetune_actor spool_dir"),
        DeclareLaunchArgument("policy_dir", default_value="finetune_policies", description="finetune_actor policy_dir"),
        DeclareLaunchArgument("command_mode", default_value="fixed", description="finetune_actor command_mode"),
        DeclareLaunchArgument("episode_steps", default_value="0", description="finetune_actor episode_steps"),
        DeclareLaunchArgument("explore", default_value="true", description="finetune_actor explore"),
        DeclareLaunchArgument("on_learner_lost", default_value="keep",
                              description="finetune_actor on_learner_lost: keep (last policy) or stand"),
    ]  # fmt: skip
    finetune = LaunchConfiguration("finetune")
    emulator = Node(
        package="robot_bridge",
        executable="emulator_node",
        name="emulator_node",
        output="screen",
        parameters=[
            _config("emulator_node.yaml"),
            {
                "contract_variant": _arg("contract_variant"),
                "speed": _arg("speed", float),
                "mass_scale": _arg("mass_scale", float),
                "friction": _arg("friction", float),
                "motor_strength": _arg("motor_strength", float),
                "action_latency_s": _arg("action_latency_s", float),
                "sensor_noise": _arg("sensor_noise", float),
            },
        ],
    )
    policy_params = {
        "policy_path": _arg("policy_path"),
        "contract_variant": _arg("contract_variant"),
        "initial_command": _arg("command", None),
        "rate_hz": _arg("rate_hz", float),
    }
    policy = Node(
        package="robot_bridge",
        executable="policy_node",
        name="policy_node",
        output="screen",
        condition=UnlessCondition(finetune),
        parameters=[_config("policy_node.yaml"), policy_params],
    )
    actor = Node(
        package="robot_bridge",
        executable="finetune_actor",
        name="policy_node",
        output="screen",
        condition=IfCondition(finetune),
        parameters=[
            _config("policy_node.yaml"),
            _config("finetune_actor.yaml"),
            policy_params,
            {
                "learner_endpoint": _arg("learner_endpoint"),
                "keys_dir": _arg("keys_dir"),
                "actor_id": _arg("actor_id"),
                "spool_dir": _arg("spool_dir"),
                "policy_dir": _arg("policy_dir"),
                "command_mode": _arg("command_mode"),
                "episode_steps": _arg("episode_steps", int),
                "explore": _arg("explore", bool),
                "on_learner_lost": _arg("on_learner_lost"),
                "auto_reset_service": "/emulator_node/reset",
            },
        ],
    )
    return LaunchDescription([*arguments, emulator, policy, actor])
