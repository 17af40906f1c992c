"""The fine-tuning actor's control loop without ROS: real policy file, real safety layer, real ActorClient and
spool on disk (the learner is simply not there, as when a robot loses the workstation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from a1_contract import get_contract
from deploy.runner import PolicyRunner
from finetune.actor import FinetuneLoop
from finetune.pipeline import free_port, init_keys
from finetune.spool import Spool
from finetune.transport import ActorClient
from robot_bridge.safety import SafetyConfig, SafetyController, SafetyStatus
from tests.deploy.conftest import QUICK_PARITY, fresh_bundle

DT = 0.02


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    from deploy.export import export_policy

    root = tmp_path_factory.mktemp("actor_policy")
    bundle = fresh_bundle(root / "bundle", get_contract(), "sac", log_std=-1.0)
    export_policy(bundle, root / "policy.onnx", **QUICK_PARITY)
    return root / "policy.onnx"


class Robot:
    """Feeds a loop the measurements of a robot standing at the default pose (tilted on request); with ``truth``
    also the ground truth, the same but for ``joint_vel_noise`` (uniform, rad/s) on the measured joint velocities."""

    def __init__(self, loop: FinetuneLoop, truth: bool = False, joint_vel_noise: float = 0.0) -> None:
        self.loop, self.t = loop, 0.0
        self.c = loop.contract
        self.tilt = 0.0
        self.nan = False
        self.truth, self.joint_vel_noise = truth, joint_vel_noise
        self.rng = np.random.default_rng(0)

    def tick(self):
        self.t += DT
        q = np.array(self.c.default_joint_pos) + 0.01 * math.sin(self.t)
        dq = np.full(12, 0.1 + 0.01 * math.cos(self.t))
        if self.nan:
            q[3] = np.nan
        names = list(self.c.joint_names)
        noise = self.rng.uniform(-self.joint_vel_noise, self.joint_vel_noise, 12) if self.joint_vel_noise else 0.0
        self.loop.on_joints(self.t, names, q, dq + noise, np.full(12, 2.0))
        half = self.tilt / 2
        quat, gyro, velocity = (math.sin(half), 0.0, 0.0, math.cos(half)), (0.0, 0.0, 0.1), (0.3, 0.0, 0.0)
        self.loop.on_imu(self.t, quat, gyro)
        self.loop.on_body_velocity(self.t, velocity)
        self.loop.on_feet(self.t, (30.0, 30.0, 30.0, 30.0))
        if self.truth:
            self.loop.on_truth_joints(self.t, names, q, dq, np.full(12, 2.0))
            self.loop.on_truth_imu(self.t, quat, gyro)
            self.loop.on_truth_body_velocity(self.t, velocity)
        return self.loop.tick(self.t)


def _loop(policy, tmp_path, **kw):
    runner = PolicyRunner(policy)
    keys = init_keys(tmp_path / "keys", ["a1"])
    client = ActorClient(
        f"tcp://127.0.0.1:{free_port()}",
        keys / "a1.key_secret",
        keys / "learner.key",
        "a1",
        tmp_path / "spool",
        contract_hash=runner.contract.hash,
    ).start()
    config = SafetyConfig(soft_start_hold_s=0.0, watchdog_timeout_s=1.0, max_delta_per_tick=2.0, fall_tilt_rad=1.0)
    safety = SafetyController(runner.contract, config, dt=DT)
    loop = FinetuneLoop(runner, safety, (0.5, 0.0, 0.0), client=client, policy_dir=tmp_path / "policies", **kw)
    return loop, client


def test_episodes_end_as_the_protocol_says_and_transitions_chain(policy, tmp_path):
    loop, client = _loop(policy, tmp_path, episode_steps=5)
    robot = Robot(loop)
    statuses = [robot.tick().status for _ in range(12)]
    assert statuses[-1] is SafetyStatus.RUNNING and SafetyStatus.SOFT_START in statuses
    running = statuses.count(SafetyStatus.RUNNING)
    robot.tilt = 1.3  # beyond fall_tilt_rad: the safety layer latches "fallen"
    assert robot.tick().status is SafetyStatus.FALLEN
    assert loop.stats.transitions == running  # every running tick became one transition (the last one: the fall)
    timeouts = list(range(4, running - 1, 5))  # every 5th transition; the last one is the fall
    assert [e.end for e in loop.stats.episode_log] == ["timeout"] * len(timeouts) + ["fall"]
    assert loop.reward.unmeasured == []
    assert all(e.true_ret is None and e.true_terms == {} for e in loop.stats.episode_log), "no referee, no truth"
    client.close()

    batch = Spool(tmp_path / "spool", "a1").read_from(0, 1000)
    assert batch is not None and len(batch) == running
    np.testing.assert_array_equal(batch.seqs, np.arange(running))
    ends = np.flatnonzero(batch.terminated | batch.truncated)
    assert list(np.flatnonzero(batch.truncated)) == timeouts
    assert list(np.flatnonzero(batch.terminated)) == [running - 1]
    # within an episode, each transition's next observation is the next transition's observation
    for i in range(running - 1):
        if i not in ends:
            np.testing.assert_array_equal(batch.next_obs[i], batch.obs[i + 1])
    assert np.abs(batch.actions).max() <= 1.0 and np.isfinite(batch.rewards).all()
    assert set(batch.reward_terms) == {k for k, w in loop.contract.rewards.items() if w}


def test_a_next_state_that_cannot_be_measured_drops_the_transition(policy, tmp_path):
    loop, client = _loop(policy, tmp_path)
    robot = Robot(loop)
    for _ in range(8):
        robot.tick()
    before = loop.stats.transitions
    robot.nan = True
    assert robot.tick().status is SafetyStatus.NONFINITE_STATE
    assert loop.stats.dropped == 1 and loop.stats.transitions == before
    client.close()


def test_without_foot_contacts_the_air_time_term_is_left_out_and_listed(policy, tmp_path):
    loop, client = _loop(policy, tmp_path)
    assert "feet_air_time" in loop.reward.unmeasured and "dof_torques_l2" in loop.reward.unmeasured
    loop.reward.on_feet(0.0, np.zeros(4))
    assert "feet_air_time" not in loop.reward.unmeasured
    client.close()


def test_learner_lost_in_stand_mode_commands_the_default_pose(policy, tmp_path):
    loop, client = _loop(policy, tmp_path, on_learner_lost="stand")
    robot = Robot(loop)
    decisions = [robot.tick() for _ in range(10)]
    running = [d for d in decisions if d.status is SafetyStatus.RUNNING]
    assert running, "the safety layer hands over after the soft start"
    default = np.asarray(loop.contract.default_joint_pos)
    for decision in running:
        np.testing.assert_allclose(decision.command, default, atol=1e-9)
    assert loop.stats.transitions == 0 and loop.stats.learner_lost_ticks >= len(running)
    client.close()


def test_the_actor_runs_without_torch(policy):
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import sys
BLOCKED = ("torch", "stable_baselines3", "sb3_contrib", "onnx", "mujoco", "gymnasium")
for name in BLOCKED:
    sys.modules[name] = None  # any import of these now raises ImportError
import numpy as np
from deploy.runner import PolicyRunner
from finetune.actor import FinetuneLoop
from finetune.transport import ActorClient  # the robot's transport too
from robot_bridge.safety import SafetyConfig, SafetyController
runner = PolicyRunner({str(policy)!r})
c = runner.contract
loop = FinetuneLoop(runner, SafetyController(c, SafetyConfig(soft_start_hold_s=0.0), dt=0.02), (0.5, 0, 0))
for k in range(20):
    t = 0.02 * (k + 1)
    loop.on_joints(t, list(c.joint_names), np.array(c.default_joint_pos), np.zeros(12), np.zeros(12))
    loop.on_imu(t, (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    loop.on_body_velocity(t, (0.0, 0.0, 0.0))
    loop.tick(t)
assert loop.stats.transitions > 0, loop.stats
print("ok", loop.stats.transitions)
"""
    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")


def test_an_operator_reset_ends_the_episode_truncated(policy, tmp_path):
    loop, client = _loop(policy, tmp_path)
    robot = Robot(loop)
    for _ in range(10):
        robot.tick()
    before = loop.stats.transitions
    loop.end_episode("operator")
    robot.tick()
    assert loop.stats.episode_log[-1].end == "operator" and loop.stats.transitions == before + 1
    client.close()
    batch = Spool(tmp_path / "spool", "a1").read_from(0, 1000)
    assert batch.truncated[-1] and not batch.terminated[-1]


def test_the_referee_scores_the_ground_truth_and_the_learner_gets_the_measured_reward(policy, tmp_path):
    same, client = _loop(policy, tmp_path / "same", episode_steps=5, score_ground_truth=True)
    robot = Robot(same, truth=True)  # the ground truth is what is measured: the same score
    for _ in range(20):
        robot.tick()
    client.close()
    assert len(same.stats.episode_log) >= 2
    for e in same.stats.episode_log:
        assert e.true_ret == e.ret and e.true_terms == e.terms

    noisy, client = _loop(policy, tmp_path / "noisy", episode_steps=5, score_ground_truth=True)
    robot = Robot(noisy, truth=True, joint_vel_noise=1.5)  # the training noise on the measured velocities only
    for _ in range(20):
        robot.tick()
    client.close()
    episodes = noisy.stats.episode_log
    assert len(episodes) >= 2
    for e in episodes:  # finite differences of noisy velocities: a large acceleration penalty, the truth's is tiny
        assert e.terms["dof_acc_l2"] < -1e-4 and e.true_terms["dof_acc_l2"] > 0.01 * e.terms["dof_acc_l2"]
        assert e.ret < e.true_ret
    batch = Spool(tmp_path / "noisy" / "spool", "a1").read_from(0, 1000)
    first = episodes[0].steps
    # what the learner got is the measured reward (records are rounded to 5 decimals)
    np.testing.assert_allclose(batch.rewards[:first].sum(), episodes[0].ret, atol=1e-5)
    weight = noisy.contract.rewards["dof_acc_l2"] * noisy.contract.policy_dt
    acc = weight * batch.reward_terms["dof_acc_l2"][:first].sum()
    np.testing.assert_allclose(acc, episodes[0].terms["dof_acc_l2"], atol=1e-5)


def test_without_fresh_ground_truth_an_episode_has_no_true_return(policy, tmp_path):
    loop, client = _loop(policy, tmp_path, episode_steps=5, score_ground_truth=True)
    robot = Robot(loop)  # no ground truth yet
    for _ in range(12):
        robot.tick()
    assert loop.stats.episode_log and all(e.true_ret is None and e.true_terms == {} for e in loop.stats.episode_log)
    robot.truth = True
    for _ in range(10):
        robot.tick()
    assert loop.stats.episode_log[-1].true_ret is not None
    robot.truth = False  # it stops: stale after the watchdog's timeout (1 s here), never scored from stale data
    for _ in range(int(1.0 / DT) + 12):
        robot.tick()
    assert loop.stats.episode_log[-1].true_ret is None and loop.stats.episode_log[-1].ret is not None
    client.close()


def test_the_policy_node_scores_emulated_episodes_from_the_ground_truth_topics(policy, tmp_path):
    """Over ROS: the emulator (training sensor noise) publishes ground_truth/* for the policy node's referee."""
    from finetune.emulated import actor_params, run_actor

    params = actor_params(work_dir=tmp_path, explore=False, episode_steps=10, score_ground_truth=True)
    scored = lambda node: [e for e in node.loop.stats.episode_log if e.true_ret is not None]
    record = run_actor(policy, gap={"sensor_noise": 1.0}, params=params, until=lambda node: len(scored(node)) >= 2,
                       safety_params={"soft_start_hold_s": 0.1, "watchdog_timeout_s": 0.3}, timeout_s=30.0)  # fmt: skip
    assert record["stop_reason"] == "until", record["episode_log"]
    scored_episodes = [e for e in record["episode_log"] if e["true_ret"] is not None]
    assert len(scored_episodes) >= 2
    for e in scored_episodes:
        # The referee's terms come from the ground-truth topics, the policy's from the noisy measurements: the
        # joint-acceleration penalty (finite differences of joint velocities) differs between the two. Which one is
        # larger depends on the gait and on tick timing, so only the difference is asserted.
        measured, true = e["terms"]["dof_acc_l2"], e["true_terms"]["dof_acc_l2"]
        assert np.isfinite(true) and true <= 0.0
        assert abs(measured - true) > 0.1 * max(abs(measured), abs(true)), (measured, true)


def test_a_normal_end_of_run_is_logged_at_info_and_a_real_estop_at_warn(policy, tmp_path, capfd):
    """run_actor's end is no fault: ``[INFO] ... finished: ...`` (the rclpy console line, from file descriptor 2),
    never ``[WARN] ... estop``; the pose is still held and the episode ends ``interrupted``. An e-stop before the end
    is reported at WARN as before (rclpy: one severity per call site, so the graph must keep running)."""
    from finetune.emulated import actor_params, run_actor

    safety = {"soft_start_hold_s": 0.1, "watchdog_timeout_s": 0.3}
    policy_lines = lambda err: [line for line in err.splitlines() if "[policy_node]:" in line]
    params = actor_params(work_dir=tmp_path / "normal", explore=False)
    record = run_actor(policy, params=params, until=lambda node: node.loop.stats.transitions >= 5,
                       safety_params=safety, timeout_s=30.0)  # fmt: skip
    assert record["stop_reason"] == "until" and record["episode_log"][-1]["end"] == "interrupted"
    assert record["safety_counters"]["ticks:estop"] >= 2  # held in damping, as before
    lines = policy_lines(capfd.readouterr().err)
    finished = [line for line in lines if "finished: run_actor reached its stop condition" in line]
    assert len(finished) == 1 and finished[0].startswith("[INFO]"), lines
    assert not [line for line in lines if "estop" in line.lower() or "e-stop" in line.lower()], lines

    def estopped(node) -> bool:
        node.loop.safety.estop("operator pressed the e-stop")
        return node.loop.safety.counters.get("ticks:estop", 0) >= 1

    params = actor_params(work_dir=tmp_path / "estop", explore=False)
    record = run_actor(policy, params=params, until=estopped, safety_params=safety, timeout_s=30.0)
    assert record["stop_reason"] == "until"
    lines = policy_lines(capfd.readouterr().err)
    assert [line for line in lines if line.startswith("[WARN]") and "estop: operator pressed the e-stop" in line]
    assert not [line for line in lines if "finished:" in line], lines
