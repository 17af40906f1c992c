"""The body-velocity estimator: synthetic motions, the emulated A1 walking, bad inputs, and its ROS node."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from a1_contract import get_contract, robot
from robot_bridge.estimator import GRAVITY, BodyVelocityEstimator, EstimatorConfig
from robot_bridge.kinematics import LegKinematics

CONTRACT = get_contract()
DEFAULT = np.asarray(CONTRACT.default_joint_pos)
UPRIGHT = (0.0, 0.0, 0.0, 1.0)  # x, y, z, w
AT_REST = (0.0, 0.0, GRAVITY)  # specific force of a trunk at rest, upright
DT = CONTRACT.sim_dt
ROOT = Path(__file__).resolve().parents[2]


def _feed(est: BodyVelocityEstimator, t: float, q, dq, forces=(40.0,) * 4, acc=AT_REST, gyro=(0.0, 0.0, 0.0)):
    est.update_imu(t, UPRIGHT, gyro, acc)
    est.update_contacts(t, forces)
    est.update_joints(t, q, dq)


def test_standing_still_estimates_zero_and_the_height_from_the_stance_feet():
    est = BodyVelocityEstimator(CONTRACT.joint_names)
    rng = np.random.default_rng(0)
    start_cov = est.estimate().covariance
    for k in range(400):  # 2 s with the training noise on the joints
        _feed(est, k * DT, DEFAULT + rng.uniform(-0.01, 0.01, 12), rng.uniform(-1.5, 1.5, 12))
    estimate = est.estimate()
    assert estimate.ready and estimate.stance.all()
    assert np.abs(estimate.velocity).max() < 0.03, estimate.velocity
    assert np.trace(estimate.covariance) < 0.1 * np.trace(start_cov)
    expected = -LegKinematics(CONTRACT.joint_names).foot_positions(DEFAULT)[:, 2].mean() + robot.FOOT_RADIUS
    assert estimate.height == pytest.approx(expected, abs=0.005)


def test_a_trunk_sliding_over_planted_feet_is_measured_by_leg_odometry():
    """Synthetic: the trunk speeds up to a constant body velocity over 0.5 s (the accelerometer says so), upright
    and without rotation, while the feet stay planted."""
    velocity, ramp_s = np.array([0.4, -0.2, 0.05]), 0.5
    kin = LegKinematics(CONTRACT.joint_names)
    est = BodyVelocityEstimator(CONTRACT.joint_names)
    q = DEFAULT.copy()
    errors = []
    for k in range(300):
        t = k * DT
        now = velocity * min(t / ramp_s, 1.0)
        acc = np.asarray(AT_REST) + (velocity / ramp_s if t < ramp_s else 0.0)
        dq = _rolling_feet_joint_velocities(kin, q, now)
        _feed(est, t, q, dq, acc=acc)
        errors.append(est.estimate().velocity - now)
        q = q + dq * DT
    assert np.abs(errors).max() < 0.02
    np.testing.assert_allclose(est.estimate().velocity, velocity, atol=0.01)
    # COM point: with a yaw rate the COM (ahead of the origin) moves sideways: v + w x TRUNK_COM.
    est.update_imu(300 * DT, UPRIGHT, (0.0, 0.0, 2.0), AT_REST)
    np.testing.assert_allclose(
        est.estimate().velocity - est._x[:3], np.cross((0.0, 0.0, 2.0), robot.TRUNK_COM), atol=1e-12
    )


def _rolling_feet_joint_velocities(kin: LegKinematics, q: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Joint velocities that keep each foot sphere's lowest point still while the (upright, not rotating) trunk
    moves at ``velocity``: foot centre velocity ``J dq + w_calf(dq) x (0, 0, -r) = -velocity``, linear in dq."""
    dq = np.zeros(12)
    down = np.array([0.0, 0.0, -robot.FOOT_RADIUS])
    columns = np.zeros((4, 3, 3))
    for part in range(3):
        unit = np.zeros(12)
        unit[kin.leg_joints[:, part]] = 1.0
        columns[:, :, part] = kin.foot_velocities(q, unit) + np.cross(kin.calf_angular_velocities(q, unit), down)
    for leg in range(4):
        dq[kin.leg_joints[leg]] = np.linalg.solve(columns[leg], -velocity)
    return dq


def test_stance_switches_with_hysteresis():
    est = BodyVelocityEstimator(CONTRACT.joint_names, EstimatorConfig(contact_on_n=15.0, contact_off_n=5.0))
    for t, force, stance in [(0.0, 0.0, False), (0.01, 10.0, False), (0.02, 20.0, True), (0.03, 10.0, True),
                             (0.04, 6.0, True), (0.05, 3.0, False), (0.06, 10.0, False)]:  # fmt: skip
        est.update_contacts(t, (force, 0.0, 0.0, 0.0))
        assert est.estimate().stance[0] == stance, (t, force)


def test_nan_samples_are_rejected_counted_and_the_last_estimate_kept():
    est = BodyVelocityEstimator(CONTRACT.joint_names)
    for k in range(100):
        _feed(est, k * DT, DEFAULT, np.zeros(12))
    before = est.estimate()
    t = 100 * DT
    assert not est.update_imu(t, UPRIGHT, (np.nan, 0.0, 0.0), AT_REST)
    assert not est.update_imu(t, (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0), AT_REST)  # no orientation
    assert not est.update_joints(t, np.full(12, np.nan), np.zeros(12))
    assert not est.update_joints(float("nan"), DEFAULT, np.zeros(12))
    assert not est.update_contacts(t, (np.inf, 0.0, 0.0, 0.0))
    assert est.counters == {"rejected:imu": 2, "rejected:joints": 2, "rejected:contacts": 1}
    after = est.estimate()
    np.testing.assert_array_equal(after.velocity, before.velocity)
    assert after.height == before.height and after.time == before.time
    with pytest.raises(ValueError, match="dq must have 12 values"):
        est.update_joints(t, DEFAULT, np.zeros(11))
    with pytest.raises(ValueError, match="forces must have 4 values"):
        est.update_contacts(t, (1.0, 2.0))
    _feed(est, t, DEFAULT, np.zeros(12))  # good samples are taken again
    assert est.estimate().time == t


def test_time_jumps_are_not_integrated_and_old_samples_are_rejected():
    est = BodyVelocityEstimator(CONTRACT.joint_names)
    for k in range(100):
        _feed(est, k * DT, DEFAULT, np.zeros(12))
    t = 99 * DT
    assert not est.update_joints(t - 0.01, DEFAULT, np.zeros(12))  # out of order
    assert est.counters["out_of_order"] == 1
    # The robot is lifted: no stance, a large specific force held; then 10 s pass without a sample.
    est.update_contacts(t, (0.0,) * 4)
    est.update_imu(t, UPRIGHT, (0.0, 0.0, 0.0), (5.0, 0.0, GRAVITY))
    variance = est.estimate().covariance[0, 0]
    est.update_imu(t + 10.0, UPRIGHT, (0.0, 0.0, 0.0), AT_REST)
    estimate = est.estimate()
    assert est.counters["time_jumps"] == 1
    assert abs(estimate.velocity[0]) < 0.01, "the 10 s gap was not integrated"
    assert estimate.covariance[0, 0] > variance + 0.01, "the gap made the estimate uncertain"
    assert est.update_imu(1.0, UPRIGHT, (0.0, 0.0, 0.0), AT_REST)  # far back: a clock reset, taken
    assert est.counters["time_jumps"] == 2 and est.estimate().time == 1.0


def _load_benchmark():
    name = "estimator_accuracy_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "estimator_accuracy.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_reference_policy_walking_in_the_emulator_on_the_estimate():
    """Closed loop, as on the robot: the policy observes the estimate; error against the noise-free truth."""
    from a1_common.bundle import BundlePolicy
    from pretrain.reference import REFERENCE_BUNDLE

    bench = _load_benchmark()
    trace = bench.walk(BundlePolicy(REFERENCE_BUNDLE), (0.5, 0.0, 0.0), 3.0, closed_loop=True, sensor_noise=1.0)
    assert not trace.fell
    assert trace.truth[:, 0].mean() > 0.1, "the robot walks forward (the error is measured on a moving robot)"
    rmse_vx, rmse_vy = trace.rmse()
    assert rmse_vx < 0.1 and rmse_vy < 0.1, (rmse_vx, rmse_vy)
    assert np.sqrt(np.mean((trace.estimated_height - trace.true_height) ** 2)) < 0.02


def test_node_publishes_odom_from_the_emulator_topics(ros_graph):
    """Real topics: the emulator node's joint_states / imu / foot_contacts in, the estimate on odom, compared by
    stamp with the emulator's ground_truth/odom while the robot bobs and sways on planted feet. No sensor noise here
    (the benchmark and the walk test measure the estimator with it)."""
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64, Float64MultiArray

    from robot_bridge import qos
    from robot_bridge.emulator_node import EmulatorNode
    from robot_bridge.estimator_node import EstimatorNode
    from tests.robot_bridge.conftest import wait_for

    class Probe(Node):
        """Moves the legs (joint targets at 50 Hz) and records estimate / ground truth pairs."""

        def __init__(self, context) -> None:
            super().__init__("estimator_probe", context=context)
            self.truth: dict[tuple[int, int], np.ndarray] = {}
            """Ground truth (vx, vy, vz, height) by stamp: the emulator stamps all messages of a sample alike."""
            self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
            self.heights: list[float] = []
            self.create_subscription(Odometry, "ground_truth/odom", self._on_truth, qos.SENSOR)
            self.create_subscription(Odometry, "odom", self._on_estimate, qos.SENSOR)
            self.create_subscription(Float64, "estimator/height", self._on_height, qos.SENSOR)
            self._targets = self.create_publisher(Float64MultiArray, "joint_targets", qos.COMMAND)
            self._start = self.get_clock().now()
            self.create_timer(0.02, self._move)

        def _move(self) -> None:
            t = (self.get_clock().now() - self._start).nanoseconds * 1e-9
            phase = 2 * np.pi * 1.5 * t
            delta = np.zeros(12)
            delta[0:4] = 0.08 * np.sin(phase)  # hips: sideways sway
            delta[4:8] = 0.12 * np.sin(phase)  # thighs: fore-aft
            delta[8:12] = -0.18 * np.sin(phase + 1.0)  # calves: up-down
            self._targets.publish(Float64MultiArray(data=(DEFAULT + delta).tolist()))

        def _on_truth(self, msg: Odometry) -> None:
            v, stamp = msg.twist.twist.linear, msg.header.stamp
            self.truth[stamp.sec, stamp.nanosec] = np.array([v.x, v.y, v.z, msg.pose.pose.position.z])

        def _on_estimate(self, msg: Odometry) -> None:
            assert msg.header.frame_id == "odom" and msg.child_frame_id == robot.BASE_BODY
            truth = self.truth.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
            if truth is not None:
                v = msg.twist.twist.linear
                self.pairs.append((np.array([v.x, v.y, v.z, msg.pose.pose.position.z]), truth))

        def _on_height(self, msg: Float64) -> None:
            self.heights.append(msg.data)

    context = ros_graph.context
    # The emulator's own copy of the ground truth on odom is moved aside: odom is the estimator's here.
    ros_graph.add(EmulatorNode(context=context, cli_args=["--ros-args", "-r", "odom:=emulator/odom"],
                               parameter_overrides=[Parameter("sensor_noise", value=0.0)]))  # fmt: skip
    estimator = ros_graph.add(EstimatorNode(context=context))
    probe = ros_graph.add(Probe(context))
    wait_for(lambda: len(probe.pairs) >= 600, 30.0, "600 odom messages (3 s at 200 Hz)")
    assert rclpy.ok(context=context) and ros_graph.alive
    estimated, truth = (np.array(x) for x in zip(*probe.pairs[100:], strict=True))
    assert truth[:, :3].std(axis=0).min() > 0.05, "the trunk moves (else a zero estimate would pass)"
    rmse = np.sqrt(np.mean((estimated[:, :3] - truth[:, :3]) ** 2, axis=0))
    assert (rmse < 0.1).all(), f"estimate vs ground truth RMSE (vx, vy, vz) = {rmse}"
    assert np.abs(estimated[:, 3] - truth[:, 3]).max() < 0.03, "the height from the stance feet (pose z)"
    assert np.isfinite(probe.heights[100:]).all() and abs(probe.heights[-1] - truth[-1, 3]) < 0.05, "~/height"
    assert estimator.rejected_messages == 0
