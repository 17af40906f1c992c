"""The real A1: ``ros2 launch robot_bridge a1_robot.launch.py policy_path:=policy.onnx [dry_run:=false]
[finetune:=true learner_endpoint:=tcp://WORKSTATION:5555]``.

Nodes: ``a1_driver`` (the A1's low-level UDP protocol), ``estimator`` (the body velocity, published as ``odom``,
from the driver's ``joint_states``, ``imu`` and ``foot_contacts``) and the policy node: ``policy_node``, or with
``finetune:=true`` the fine-tuning actor (executable ``finetune_actor``, also named ``policy_node``: it explores,
records transitions, streams them to the learner over CurveZMQ and swaps in the policies the learner publishes).

Each node reads its parameters from ``config/<node>.yaml`` in the package share (``a1_driver.yaml``,
``estimator.yaml``, ``policy_node.yaml``; the actor ``finetune_actor.yaml`` over ``policy_node.yaml``;
``config_dir:=DIR`` reads the same files from ``DIR``). The launch arguments are the per-run choices, which those
files leave out; each names the node parameter it sets (``ros2 param describe`` tells what it does).

First-run safety defaults:

* ``dry_run:=true``: the driver builds every command and sends none (``/a1_driver/diagnostics``: ``would_send``).
  Set ``dry_run:=false`` only with the robot hung up and the e-stop (``/policy_node/estop``) at hand;
* ``power_limit_w:=150.0``: the driver latches damping when ``sum |tau dq|`` stays above it for ``guard_persist_s``
  (0.1 s). A hung leg swinging to the default pose takes far less; the emulated A1 walking 0.5 m/s on the ground
  holds above 150 W for 0.1 s at times (the sustained 0.1-s minimum reaches 188 W), so on the ground raise it
  (``power_limit_w:=400.0``). The SDK's own ``Safety`` class says a 100 W limit trips "with 4 hands shaking";
* ``auto_stand_up:=false``: after a fall the policy node damps and waits for the operator (``~/stand_up``);
* ``command:=[0.0, 0.0, 0.0]``: stepping in place until ``cmd_vel`` says otherwise;
* ``start_policy:=false`` starts the driver and the estimator only: the driver sends damping (Kp 0), so with
  ``dry_run:=false`` the state flows (the A1 answers commands) while the joints stay free to move by hand.

``finetune:=true`` runs on the ground, unattended; these defaults differ from the plain graph's on purpose:

* ``power_limit_w:=400.0``: the on-the-ground limit;
* ``auto_stand_up:=true``: a real robot has no reset service, so after a fall the actor stands up from the belly by
  itself (on its back or side it refuses and waits for ``/policy_node/stand_up``) and soft-starts a new episode;
* ``command:=[0.5, 0.0, 0.0]``: the velocity it learns to track;
* ``on_learner_lost:=stand``: with the learner unreachable it holds the default pose instead of running a stale
  policy unattended.

Run fine-tuning only after the plain graph walked the robot on the ground (``dry_run`` is still true by default).
Start the learner first, on the workstation: ``python -m finetune learner --bundle BUNDLE --keys keys --endpoint
tcp://WORKSTATION:5555``. Keys: ``python -m finetune keys`` (see finetune/PROTOCOL.md).

``emulated:=true`` also starts ``emulator_node`` with ``interface: udp`` on 127.0.0.1:``robot_port`` and points
the driver there (robot_ip and local_ip 127.0.0.1): the same graph on a laptop with only the robot swapped
(ground truth on ``ground_truth/odom``). Nothing else changes: ``dry_run:=false`` is still needed to move it.
Without ``ros2 launch`` (the PyPI wheels) the emulated graph runs as ``python -m robot_bridge.run_robot_graph``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import (
    AndSubstitution,
    IfElseSubstitution,
    LaunchConfiguration,
    NotSubstitution,
    PathJoinSubstitution,
)
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
        DeclareLaunchArgument("emulated", default_value="false",
                              description="true: also start the UDP emulator on 127.0.0.1 and drive it instead"),
        DeclareLaunchArgument("start_policy", default_value="true",
                              description="false: driver + estimator only (damping: read the state, move by hand)"),
        DeclareLaunchArgument("config_dir", default_value=installed_config,
                              description="folder of the nodes' parameter files (<node>.yaml)"),
        DeclareLaunchArgument("contract_variant", default_value="isaaclab3",
                              description="every node's contract_variant"),
        # ---- the driver ----
        DeclareLaunchArgument("dry_run", default_value="true", description="a1_driver dry_run: true sends nothing"),
        DeclareLaunchArgument("power_limit_w", default_value=_by_mode("150.0", "400.0"),
                              description="a1_driver power_limit_w (W): 150 hung, 400 on the ground"),
        DeclareLaunchArgument("robot_port", default_value="8007",
                              description="a1_driver robot_port (emulator udp_port)"),
        DeclareLaunchArgument("foot_force_scale", default_value="1.0",
                              description="a1_driver (and emulator) foot_force_scale: calibrate standing, sum = m g"),
        # ---- the policy node ----
        DeclareLaunchArgument("command", default_value=_by_mode("[0.0, 0.0, 0.0]", "[0.5, 0.0, 0.0]"),
                              description="policy_node initial_command [vx m/s, vy m/s, yaw rate rad/s]"),
        DeclareLaunchArgument("auto_stand_up", default_value=_by_mode("false", "true"),
                              description="policy_node auto_stand_up"),
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
        DeclareLaunchArgument("on_learner_lost", default_value="stand",
                              description="finetune_actor on_learner_lost: stand (default pose) or keep"),
    ]  # fmt: skip
    emulated, finetune = LaunchConfiguration("emulated"), LaunchConfiguration("finetune")
    start_policy = LaunchConfiguration("start_policy")
    emulator = Node(
        package="robot_bridge",
        executable="emulator_node",
        name="emulator_node",
        output="screen",
        condition=IfCondition(emulated),
        parameters=[
            _config("emulator_node.yaml"),
            {
                "contract_variant": _arg("contract_variant"),
                "interface": "udp",
                "udp_ip": "127.0.0.1",
                "udp_port": _arg("robot_port", int),
                "foot_force_scale": _arg("foot_force_scale", float),
            },
        ],
    )
    driver_params = {
        "contract_variant": _arg("contract_variant"),
        "robot_port": _arg("robot_port", int),
        "dry_run": _arg("dry_run", bool),
        "power_limit_w": _arg("power_limit_w", float),
        "foot_force_scale": _arg("foot_force_scale", float),
    }
    driver = Node(
        package="robot_bridge",
        executable="a1_driver",
        name="a1_driver",
        output="screen",
        condition=UnlessCondition(emulated),
        parameters=[_config("a1_driver.yaml"), driver_params],
    )
    emulated_driver = Node(
        package="robot_bridge",
        executable="a1_driver",
        name="a1_driver",
        output="screen",
        condition=IfCondition(emulated),
        parameters=[_config("a1_driver.yaml"), driver_params, {"robot_ip": "127.0.0.1", "local_ip": "127.0.0.1"}],
    )
    estimator = Node(
        package="robot_bridge",
        executable="estimator",
        name="estimator",
        output="screen",
        parameters=[_config("estimator.yaml"), {"contract_variant": _arg("contract_variant")}],
    )
    policy_params = {
        "policy_path": _arg("policy_path"),
        "contract_variant": _arg("contract_variant"),
        "initial_command": _arg("command", None),
        "auto_stand_up": _arg("auto_stand_up", bool),
    }
    policy = Node(
        package="robot_bridge",
        executable="policy_node",
        name="policy_node",
        output="screen",
        condition=IfCondition(AndSubstitution(start_policy, NotSubstitution(finetune))),
        parameters=[_config("policy_node.yaml"), policy_params],
    )
    actor = Node(
        package="robot_bridge",
        executable="finetune_actor",
        name="policy_node",
        output="screen",
        condition=IfCondition(AndSubstitution(start_policy, finetune)),
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
            },
        ],
    )
    return LaunchDescription([*arguments, emulator, driver, emulated_driver, estimator, policy, actor])
