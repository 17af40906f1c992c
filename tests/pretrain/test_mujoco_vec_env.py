"""The embedded MuJoCo A1 VecEnv against its contract, with real MuJoCo and real SB3."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor, VecNormalize

from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
from a1_common.task import batch_math
from a1_contract import get_contract


def hold_action(env: A1MujocoVecEnv) -> np.ndarray:
    """Normalized action whose raw value is 0: joint targets at the default pose."""
    return np.tile(env.contract.action_bounds.to_normalized(np.zeros(12)), (env.num_envs, 1))


def test_spaces_and_shapes_follow_the_contract():
    contract = get_contract()
    env = A1MujocoVecEnv(4, contract)
    obs = env.reset()
    assert env.observation_space.shape == (contract.obs_dim,) == (48,)
    assert env.action_space.shape == (12,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert obs.shape == (4, 48) and obs.dtype == np.float32
    obs, rewards, dones, infos = env.step(hold_action(env))
    assert obs.shape == (4, 48) and rewards.shape == (4,) and dones.dtype == bool and len(infos) == 4
    assert all(env.observation_space.contains(o) for o in obs)

    reduced = A1MujocoVecEnv(2, get_contract("no_base_lin_vel"))
    assert reduced.reset().shape == (2, 45)


def test_observation_layout_matches_the_contract_terms():
    env = A1MujocoVecEnv(3, obs_noise=False, randomize=False)
    obs = env.reset()
    slices = env.contract.obs_slices()
    np.testing.assert_allclose(obs[:, slices["projected_gravity"]], [[0, 0, -1]] * 3, atol=1e-6)
    np.testing.assert_allclose(obs[:, slices["joint_pos"]], 0.0, atol=1e-6)  # reset at the default pose
    np.testing.assert_allclose(obs[:, slices["velocity_commands"]], env.commands.command, atol=1e-6)
    action = np.random.default_rng(1).uniform(-1, 1, (3, 12))
    obs, *_ = env.step(action)
    np.testing.assert_allclose(obs[:, slices["actions"]], env.contract.action_bounds.to_raw(action), atol=1e-5)
    joint_pos = env.qpos[:, env.info.qpos_joints] - np.asarray(env.contract.default_joint_pos)
    np.testing.assert_allclose(obs[:, slices["joint_pos"]], joint_pos, atol=1e-5)


@pytest.mark.slow
def test_64_robots_hold_the_default_pose_for_10_seconds():
    env = A1MujocoVecEnv(64, seed=0)  # Isaac Lab 3.0 randomization: reset spread, mass, COM
    env.reset()
    action = hold_action(env)
    steps = int(round(10.0 / env.contract.policy_dt))
    heights = []
    for _ in range(steps):
        _, _, dones, infos = env.step(action)
        assert not dones.any(), [info for info in infos if info]
        heights.append(env.base_height)
    settled = np.array(heights[50:])  # after 1 s the randomized reset poses have settled
    assert settled.min() > 0.2 and settled.max() < 0.35, (settled.min(), settled.max())
    gravity = batch_math.projected_gravity(env.qpos[:, 3:7])
    assert (gravity[:, 2] < -0.95).all()
    assert env.num_diverged == 0


def test_robot_dropped_on_its_back_terminates():
    env = A1MujocoVecEnv(2, obs_noise=False, randomize=False)
    env.reset()
    qpos = env.qpos.copy()
    qpos[0, 2] = 0.35
    qpos[0, 3:7] = (0.0, 1.0, 0.0, 0.0)  # 180 deg about x: on its back
    env.set_root_state([0], qpos=qpos[0])
    steps, dones = 0, np.zeros(2, dtype=bool)
    while not dones[0] and steps < 100:
        _, _, dones, infos = env.step(hold_action(env))
        steps += 1
    assert dones[0], "a robot on its back must terminate (trunk contact)"
    assert not dones[1]
    assert infos[0]["TimeLimit.truncated"] is False
    terminal = infos[0]["terminal_observation"]
    assert terminal[env.contract.obs_slices()["projected_gravity"]][2] > 0.9  # upside down
    assert steps < 50
    assert env.episode_length[0] == 0  # it was reset


def test_timeouts_are_truncations_with_terminal_observations():
    contract = get_contract().replace(episode_length_s=0.2)  # 10 policy steps
    env = A1MujocoVecEnv(4, contract, randomize=False)
    env.reset()
    for step in range(1, 11):
        obs, _, dones, infos = env.step(np.full((4, 12), 0.1))
        if step < 10:
            assert not dones.any()
    assert dones.all()
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["l"] == 10
        assert info["terminal_observation"].shape == (48,)
        assert np.isfinite(info["episode"]["r"])
        assert set(info["reward_terms"]) == {k for k, w in contract.rewards.items() if w}
        np.testing.assert_allclose(sum(info["reward_terms"].values()), info["episode"]["r"], rtol=1e-5, atol=1e-7)
    # The returned observation is the first of the next episode: last action reset to zero.
    actions = contract.obs_slices()["actions"]
    assert np.all(obs[:, actions] == 0.0)
    assert not np.allclose(infos[0]["terminal_observation"][actions], 0.0)


def test_robot_moving_at_the_commanded_velocity_earns_more_tracking_reward():
    env = A1MujocoVecEnv(2, obs_noise=False, randomize=False)
    env.reset()
    env.commands.set(np.array([0, 1]), np.array([0.5, 0.0, 0.0]))
    tracked, still = 0.0, 0.0
    for _ in range(25):
        qvel = env.qvel.copy()
        qvel[0, 0:3] = (0.5, 0.0, 0.0)  # pushed along +x at the commanded speed (yaw 0 at reset)
        qvel[1, 0:3] = 0.0
        env.set_root_state([0, 1], qvel=qvel)
        _, rewards, dones, _ = env.step(hold_action(env))
        assert not dones.any()
        term = env.last_reward_terms["track_lin_vel_xy_exp"]
        tracked += term[0]
        still += term[1]
    assert tracked > still + 5.0, (tracked, still)  # exp(-0.25/0.25) ~ 0.37 per step when still


def test_episode_tracking_error_is_reported():
    contract = get_contract().replace(episode_length_s=0.2)  # 10 policy steps
    env = A1MujocoVecEnv(2, contract, obs_noise=False, randomize=False)
    env.reset()
    env.commands.set(np.array([0, 1]), np.array([0.5, 0.0, 0.0]))
    for _ in range(10):
        qvel = env.qvel.copy()
        qvel[0, 0:3] = (0.5, 0.0, 0.0)
        env.set_root_state([0], qvel=qvel[0])
        _, _, dones, infos = env.step(hold_action(env))
    assert dones.all()
    moving, standing = infos[0]["tracking_error_xy"], infos[1]["tracking_error_xy"]
    assert moving < 0.2 and 0.4 < standing < 0.6, (moving, standing)


def test_step_reward_is_the_weighted_sum_times_dt():
    env = A1MujocoVecEnv(3, seed=2)
    env.reset()
    _, rewards, _, _ = env.step(np.random.default_rng(0).uniform(-1, 1, (3, 12)))
    c = env.contract
    expected = sum(c.rewards[k] * v for k, v in env.last_reward_terms.items()) * c.policy_dt
    np.testing.assert_allclose(rewards, expected, rtol=1e-5)
    assert env.last_reward_terms["dof_torques_l2"].min() > 0  # applied torques are read back


def run(env: A1MujocoVecEnv, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    observations, rewards = [env.reset()], []
    for _ in range(steps):
        obs, reward, _, _ = env.step(rng.uniform(-1, 1, (env.num_envs, 12)))
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


def test_same_seed_same_trajectory():
    a = run(A1MujocoVecEnv(8, seed=5, num_threads=2), 60, seed=1)
    b = run(A1MujocoVecEnv(8, seed=5, num_threads=1), 60, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = run(A1MujocoVecEnv(8, seed=6, num_threads=2), 60, seed=1)
    assert not np.array_equal(a[0], c[0])


def test_seed_method_reseeds_the_episode_stream():
    env = A1MujocoVecEnv(4, seed=0)
    env.seed(11)
    first = env.reset()
    env.seed(11)
    np.testing.assert_array_equal(first, env.reset())


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.zeros((3, 12)), "shape"),
        (np.zeros((4, 11)), "shape"),
        (np.full((4, 12), np.nan), "NaN"),
        (np.full((4, 12), 1.5), "[-1, 1]"),
        ("walk", "numeric"),
    ],
)
def test_bad_actions_raise_clear_errors(actions, message):
    env = A1MujocoVecEnv(4)
    env.reset()
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        env.step(actions)
    env.step(hold_action(env))  # the env is still usable


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        A1MujocoVecEnv(0)
    with pytest.raises(ValueError, match="does not implement"):
        contract = get_contract()
        terms = contract.obs_terms + (dataclasses.replace(contract.obs_terms[0], name="height_scan", dim=187),)
        A1MujocoVecEnv(1, contract.replace(obs_terms=terms))


def test_startup_randomization_follows_the_contract():
    env = A1MujocoVecEnv(32, seed=0)
    trunk = env.info.trunk_body
    nominal = env.model.body_mass[trunk]
    ratio = np.array([m.body_mass[trunk] for m in env.models]) / nominal
    assert ratio.min() >= 1 / 1.25 - 1e-9 and ratio.max() <= 1.25 + 1e-9 and ratio.std() > 0.05
    com = np.array([m.body_ipos[trunk] for m in env.models]) - env.model.body_ipos[trunk]
    assert np.abs(com[:, :2]).max() <= 0.05 and np.abs(com[:, 2]).max() <= 0.01 and com.std() > 0

    env2 = A1MujocoVecEnv(32, get_contract("isaaclab2"), seed=0)
    added = np.array([m.body_mass[trunk] for m in env2.models]) - nominal
    assert added.min() >= -1.0 - 1e-9 and added.max() <= 3.0 + 1e-9 and added.std() > 0.5

    nominal_env = A1MujocoVecEnv(4, randomize=False)
    assert all(m.body_mass[trunk] == nominal for m in nominal_env.models)


def test_pushes_change_the_root_velocity():
    dr = dataclasses.replace(get_contract().randomization, push_interval_s=(0.02, 0.02), reset_base_velocity=(0, 0))
    env = A1MujocoVecEnv(8, get_contract().replace(randomization=dr), seed=3)
    env.reset()
    before = env.qvel[:, 0:2].copy()
    env.step(hold_action(env))
    assert np.abs(env.qvel[:, 0:2] - before).max() > 0.05


def test_works_under_sb3_wrappers_and_algorithms():
    env = VecCheckNan(VecNormalize(VecMonitor(A1MujocoVecEnv(4, seed=0)), clip_obs=10.0), raise_exception=True)
    sac = SAC(
        "MlpPolicy",
        env,
        learning_starts=32,
        batch_size=32,
        buffer_size=2000,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        ent_coef="auto_0.01",
    )
    sac.learn(200)
    assert sac.num_timesteps >= 200 and sac.replay_buffer.size() > 0
    ppo = PPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0)
    ppo.learn(64)
    assert ppo.num_timesteps >= 64


def test_action_delay_keeps_the_previous_targets_for_the_first_substeps():
    c = get_contract()
    kick = np.full((2, c.num_joints), 0.8)
    states = {}
    for delay in (0, c.decimation):
        env = A1MujocoVecEnv(2, c, seed=3, num_threads=1, obs_noise=False, randomize=False, action_delay_substeps=delay)
        env.reset()
        env.step(kick)
        states[delay] = env.state.copy()
        env.step(np.zeros((2, c.num_joints)))
        states[delay, "second"] = env.state.copy()
    hold = A1MujocoVecEnv(2, c, seed=3, num_threads=1, obs_noise=False, randomize=False)
    hold.reset()
    hold.step(np.tile(c.action_bounds.to_normalized(np.zeros(c.num_joints)), (2, 1)))  # raw 0: the default pose
    # a full policy step of delay: the first step still applied the reset's default-pose targets
    np.testing.assert_allclose(states[c.decimation], hold.state, atol=1e-12)
    assert not np.allclose(states[0], hold.state, atol=1e-6)
    hold.step(kick)  # the delayed robot's second step: the kick, one policy step late
    np.testing.assert_allclose(states[c.decimation, "second"], hold.state, atol=1e-12)
    for bad in (2 * c.decimation + 1, -1, (3, 1), (0, 1, 2), 1.5):
        with pytest.raises(ValueError, match="action_delay_substeps"):
            A1MujocoVecEnv(1, c, num_threads=1, action_delay_substeps=bad)


def _delayed_run(c, delay, actions):
    env = A1MujocoVecEnv(1, c, seed=3, num_threads=1, obs_noise=False, randomize=False, action_delay_substeps=delay)
    env.reset()
    out = []
    for a in actions:
        env.step(np.asarray(a)[None])
        out.append(env.state.copy())
    return out


def test_two_policy_steps_of_delay_apply_each_target_two_steps_late():
    c = get_contract()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.8, 0.8, (4, c.num_joints))
    default = c.action_bounds.to_normalized(np.zeros(c.num_joints))  # raw 0: the reset's default-pose targets
    late = _delayed_run(c, 2 * c.decimation, actions)
    by_hand = _delayed_run(c, 0, [default, default, actions[0], actions[1]])
    for step in range(4):
        np.testing.assert_allclose(late[step], by_hand[step], atol=1e-12)
    # Between whole steps: 1.5 policy steps late = half a step of the one before last, then the last one.
    mid = _delayed_run(c, c.decimation + c.decimation // 2, actions)
    one_step = _delayed_run(c, c.decimation, actions)
    assert not np.allclose(mid[2], late[2], atol=1e-6) and not np.allclose(mid[2], one_step[2], atol=1e-6)


def test_a_latency_range_draws_each_robot_its_own_latency_at_reset():
    c = get_contract()
    n = 64
    env = A1MujocoVecEnv(n, c, seed=5, num_threads=1, obs_noise=False, randomize=False,
                         action_delay_substeps=(0, 2 * c.decimation))  # fmt: skip
    env.reset()
    drawn = env.action_delay.copy()
    assert drawn.min() >= 0 and drawn.max() <= 2 * c.decimation and len(np.unique(drawn)) >= 5, drawn
    actions = np.random.default_rng(1).uniform(-0.8, 0.8, (3, n, c.num_joints))
    for a in actions:
        env.step(a)
    # Each robot moved exactly as a robot with its latency fixed: the draw is per robot, not shared.
    for i in np.flatnonzero(np.isin(drawn, [0, c.decimation, 2 * c.decimation]))[:3]:
        alone = _delayed_run(c, int(drawn[i]), actions[:, i])
        np.testing.assert_allclose(env.state[i], alone[-1][0], atol=1e-9)


def test_modify_model_changes_copies_of_the_models():
    from robot_bridge.emulator import DynamicsGap, apply_gap

    c = get_contract()
    weak = lambda m: apply_gap(m, 1, DynamicsGap(motor_strength=0.5, mass_scale=1.2))  # body 1: the trunk
    env = A1MujocoVecEnv(3, c, num_threads=1, randomize=False, modify_model=weak)
    assert env.models[0] is env.models[1] is env.models[2] and env.models[0] is not env.model
    np.testing.assert_allclose(env.models[0].actuator_gainprm[:, 0], 0.5 * env.model.actuator_gainprm[:, 0])
    assert env.models[0].body_mass[1] == pytest.approx(1.2 * env.model.body_mass[1])
    randomized = A1MujocoVecEnv(3, c, seed=1, num_threads=1, modify_model=weak)
    assert len({id(m) for m in randomized.models}) == 3
    assert all(m.actuator_forcerange[0, 1] == pytest.approx(0.5 * env.model.actuator_forcerange[0, 1])
               for m in randomized.models)  # fmt: skip


def test_joint_targets_follow_the_contract_target_rule_the_safety_layer_also_applies():
    """One rule for what a joint target can be: the env clamps to the same limits as the robot's safety layer."""
    from robot_bridge.safety import SafetyController

    c = get_contract()  # the default PPO-percentile bounds reach past the calf's hard limit
    wide = c.replace(
        action_bounds=dataclasses.replace(c.action_bounds, high=tuple(h + 20.0 for h in c.action_bounds.high))
    )
    limits = wide.joint_target_limits()
    safety = SafetyController(wide)
    np.testing.assert_array_equal(np.stack([safety.lower, safety.upper], axis=1), limits)
    env = A1MujocoVecEnv(2, wide, num_threads=1, obs_noise=False, randomize=False)
    env.reset()
    env.step(np.ones((2, 12)))
    np.testing.assert_allclose(env._ctrl[:, -1, :12], np.tile(limits[:, 1], (2, 1)))  # every target clamped, none past
    env.step(-np.ones((2, 12)))
    np.testing.assert_allclose(
        env._ctrl[:, -1, :12], np.tile(wide.joint_targets(-np.ones(12)), (2, 1))
    )  # inside: as is
    # the raw action (observation, action-rate reward) is what the policy chose, as in Isaac Lab
    np.testing.assert_allclose(env.action_raw, np.tile(wide.action_bounds.low, (2, 1)))
