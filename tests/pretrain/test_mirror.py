"""Left-right mirror: the contract's map is the simulator's symmetry, and mirrored batches are built from it."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.buffers import ReplayBuffer

from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
from a1_contract import ActionBounds, ContractError, get_contract
from a1_contract.symmetry import joint_mirror, mirror_of
from pretrain.mirror import enable_mirror

CONTRACT = get_contract()


def test_mirror_is_an_involution_that_swaps_legs_and_flips_hips():
    m = mirror_of(CONTRACT)
    names = CONTRACT.joint_names
    assert names[m.joint_perm[names.index("FL_hip_joint")]] == "FR_hip_joint"
    assert names[m.joint_perm[names.index("RR_calf_joint")]] == "RL_calf_joint"
    assert m.joint_sign[names.index("FL_hip_joint")] == -1 and m.joint_sign[names.index("FL_thigh_joint")] == 1
    x = np.random.default_rng(0).normal(size=(7, CONTRACT.obs_dim))
    np.testing.assert_allclose(m.obs(m.obs(x)), x)
    cmd = CONTRACT.obs_slices()["velocity_commands"]
    np.testing.assert_allclose(m.obs(x)[:, cmd], x[:, cmd] * [1, -1, -1])
    with pytest.raises(ContractError, match="no mirror"):
        joint_mirror(("FL_hip_joint", "FM_hip_joint"))


def test_the_simulator_is_mirror_symmetric():
    """Robot B gets the mirrored command and mirrored actions of robot A: it stays A's mirror image."""
    contract = CONTRACT.replace(action_bounds=ActionBounds.symmetric(1.0))
    m = mirror_of(contract)
    env = A1MujocoVecEnv(2, contract, seed=0, num_threads=1, randomize=False, obs_noise=False)
    try:
        env.reset()
        command = np.array([[0.5, 0.3, 0.4]])
        env.commands.set(np.array([0]), command)
        env.commands.set(np.array([1]), command * [1, -1, -1])
        rng, a = np.random.default_rng(0), np.zeros(12)
        for _ in range(15):
            a = 0.8 * a + 0.2 * rng.uniform(-1, 1, 12)
            obs, rewards, _, _ = env.step(np.stack([a, m.joints(a)]))
            assert abs(rewards[0] - rewards[1]) <= 0.02 * abs(rewards[0]) + 2e-4
            # up to the URDF's small left-right asymmetries (link centres of mass)
            assert np.abs(m.obs(obs[0]) - obs[1]).max() < 0.2
    finally:
        env.close()


class _Model:
    def __init__(self, buffer: ReplayBuffer) -> None:
        self.replay_buffer = buffer


def _filled_buffer(contract, n: int = 64) -> ReplayBuffer:
    env = A1MujocoVecEnv(1, contract, seed=0, num_threads=1)
    try:
        buffer = ReplayBuffer(n, env.observation_space, env.action_space, device="cpu", n_envs=1)
    finally:
        env.close()
    rng = np.random.default_rng(1)
    for _ in range(n):
        obs, nxt = rng.normal(size=(2, 1, contract.obs_dim)).astype(np.float32)
        action = rng.uniform(-1, 1, size=(1, 12)).astype(np.float32)
        buffer.add(obs, nxt, action, rng.normal(size=1), np.zeros(1), [{}])
    return buffer


def test_mirrored_batches():
    contract = CONTRACT.replace(action_bounds=ActionBounds.symmetric(1.0))
    m = mirror_of(contract)
    buffer = enable_mirror(_Model(_filled_buffer(contract)), contract, 1.0)
    inds = np.arange(10)
    np.random.seed(0)
    batch = buffer._get_samples(inds)
    np.testing.assert_allclose(batch.observations.numpy(), m.obs(buffer.observations[inds, 0]), atol=1e-6)
    np.testing.assert_allclose(batch.next_observations.numpy(), m.obs(buffer.next_observations[inds, 0]), atol=1e-6)
    np.testing.assert_allclose(batch.actions.numpy(), m.joints(buffer.actions[inds, 0]), atol=1e-6)
    np.testing.assert_allclose(batch.rewards.numpy()[:, 0], buffer.rewards[inds, 0], atol=1e-6)
    assert buffer.counts == {"sampled": 10, "mirrored": 10, "not_expressible": 0}

    buffer.configure(contract, 0.0)  # off: SB3's own sample, row for row
    batch = buffer._get_samples(inds)
    np.testing.assert_allclose(batch.observations.numpy(), buffer.observations[inds, 0], atol=1e-6)

    asymmetric = CONTRACT  # PPO-percentile bounds: some mirrored actions fall outside them and stay unmirrored
    buffer.configure(asymmetric, 1.0)
    batch = buffer._get_samples(np.arange(64))
    c = buffer.counts
    assert c["sampled"] == 64 and c["mirrored"] + c["not_expressible"] == 64 and c["not_expressible"] > 0
    assert np.abs(batch.actions.numpy()).max() <= 1.0


def test_mirror_needs_the_plain_replay_buffer():
    class Other(ReplayBuffer):
        pass

    buffer = _filled_buffer(CONTRACT, 8)
    buffer.__class__ = Other
    with pytest.raises(ValueError, match="plain ReplayBuffer"):
        enable_mirror(_Model(buffer), CONTRACT, 0.5)
