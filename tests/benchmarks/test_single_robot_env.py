"""The single-robot baseline computes what the batched env computes (so the benchmark compares like with like)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

BENCH_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH_DIR))
from single_robot_env import A1SingleRobotEnv  # noqa: E402


@pytest.fixture()
def pair():
    vec = A1MujocoVecEnv(1, obs_noise=False, randomize=False, num_threads=1)
    single = A1SingleRobotEnv(vec.contract, obs_noise=False, randomize=False, seed=0)
    vec.reset()
    single.reset(seed=0)
    rng = np.random.default_rng(3)
    qpos = vec.qpos[0].copy()
    qpos[0:3] += [0.1, -0.2, 0.02]
    qpos[3:7] = [0.98, 0.05, -0.1, 0.15]
    qpos[3:7] /= np.linalg.norm(qpos[3:7])
    qpos[vec.info.qpos_joints] += rng.uniform(-0.1, 0.1, 12)
    qvel = rng.uniform(-0.5, 0.5, vec.model.nv)
    command = np.array([[0.6, -0.3, 0.4]])
    vec.set_root_state([0], qpos[None], qvel[None])
    single.set_state(qpos, qvel)
    for env in (vec, single):
        env.commands.set(np.array([0]), command)
    return vec, single


def test_observation_matches_the_batched_env(pair):
    vec, single = pair
    expected = vec._observe(vec.snapshot())[0]
    np.testing.assert_allclose(single.observe(), expected, atol=1e-6)


def test_steps_match_the_batched_env(pair):
    vec, single = pair
    actions = np.random.default_rng(4).uniform(-1.0, 1.0, (20, 12))  # feet touch down from step 8
    for action in actions:
        obs_v, rew_v, done_v, _ = vec.step(action[None])
        obs_s, rew_s, terminated, truncated, _ = single.step(action)
        assert not done_v[0] and not (terminated or truncated)
        np.testing.assert_allclose(obs_s, obs_v[0], atol=1e-6)
        assert abs(rew_s - float(rew_v[0])) < 1e-6
        assert single.last_reward_terms.keys() == vec.last_reward_terms.keys()
        for name, value in vec.last_reward_terms.items():
            np.testing.assert_allclose(single.last_reward_terms[name], value, rtol=1e-9, atol=1e-9, err_msg=name)


def test_robot_on_its_back_terminates_on_the_same_step_as_the_batched_env():
    vec = A1MujocoVecEnv(1, obs_noise=False, randomize=False, num_threads=1)
    single = A1SingleRobotEnv(vec.contract, obs_noise=False, randomize=False, seed=0)
    vec.reset()
    single.reset(seed=0)
    qpos = vec.qpos[0].copy()
    qpos[2] = 0.35
    qpos[3:7] = (0.0, 1.0, 0.0, 0.0)  # 180 deg about x: on its back
    vec.set_root_state([0], qpos=qpos)
    single.set_state(qpos)
    for env in (vec, single):
        env.commands.set(np.array([0]), np.array([[0.5, 0.0, 0.0]]))
    hold = vec.contract.action_bounds.to_normalized(np.zeros(12))
    done_at = {}
    for step in range(1, 101):
        _, rew_v, dones, infos = vec.step(hold[None])
        _, rew_s, terminated, truncated, info = single.step(hold)
        assert abs(rew_s - float(rew_v[0])) < 1e-6
        assert bool(dones[0]) == (terminated or truncated)
        if dones[0]:
            done_at = {"step": step, "truncated": truncated, "info": info, "vec_info": infos[0]}
            break
    assert done_at, "a robot on its back must terminate (trunk contact)"
    assert not done_at["truncated"] and done_at["vec_info"]["TimeLimit.truncated"] is False
    assert done_at["info"]["episode"]["l"] == done_at["vec_info"]["episode"]["l"] == done_at["step"]


def test_benchmark_script_prints_a_json_last_line():
    script = os.path.join(BENCH_DIR, "sim_throughput.py")
    proc = subprocess.run(
        [sys.executable, script, "--seconds", "0.5", "--num-envs", "8"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.path.join(BENCH_DIR, ".."),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("metric", "value", "ceiling", "ratio", "sync_vector_env", "ratio_vs_sync", "num_envs", "threads"):
        assert key in result
    assert result["metric"] == "policy_steps_per_s" and result["num_envs"] == 8
    assert result["value"] > 0 and result["ceiling"] > 0 and result["sync_vector_env"] > 0
