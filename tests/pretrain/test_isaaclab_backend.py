"""The Isaac Lab backend's checks and action mapping, without Isaac Lab (it needs Python 3.12 and a GPU)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from a1_contract import ContractError, get_contract
from a1_contract.variants import ISAACLAB2_TASK_ID, ISAACLAB3_TASK_ID
from pretrain import isaaclab_backend
from pretrain.isaaclab_backend import (
    ISAACLAB_POLICY_TERMS,
    TASK_IDS,
    check_layout,
    make_isaaclab_env,
    normalized_to_raw,
    resolve_task_id,
)


def layout(contract) -> tuple[list[str], list[tuple[str, int]]]:
    return list(contract.joint_names), [(t.name, t.dim) for t in contract.obs_terms]


def test_task_ids_are_the_contracts():
    assert TASK_IDS == {"3": ISAACLAB3_TASK_ID, "2": ISAACLAB2_TASK_ID}
    assert TASK_IDS["3"] == "IsaacContrib-Velocity-Flat-UnitreeA1"
    assert TASK_IDS["2"] == "Isaac-Velocity-Flat-Unitree-A1-v0"
    assert get_contract("isaaclab3").sources["task"] == resolve_task_id("3.0.0")
    assert get_contract("isaaclab2").sources["task"] == resolve_task_id("2.3.2.post1")
    assert resolve_task_id("3", "My-Task") == "My-Task"
    with pytest.raises(ValueError, match="unsupported Isaac Lab version"):
        resolve_task_id("1.4")


def test_isaaclab_policy_term_names_are_ours():
    assert list(ISAACLAB_POLICY_TERMS) == [t.name for t in get_contract().obs_terms]


@pytest.mark.parametrize("variant", ["isaaclab3", "isaaclab2", "no_base_lin_vel", "isaaclab3_unit_bounds"])
def test_check_layout_accepts_the_contracts_own_layout(variant):
    contract = get_contract(variant)
    joints, terms = layout(contract)
    check_layout(joints, terms, contract)
    check_layout(tuple(joints), [(name, np.int64(dim)) for name, dim in terms], contract)


def test_check_layout_names_both_swapped_joints():
    contract = get_contract()
    joints, terms = layout(contract)
    joints[0], joints[1] = joints[1], joints[0]
    with pytest.raises(ContractError) as info:
        check_layout(joints, terms, contract)
    message = str(info.value)
    assert "joint at index 0 is 'FR_hip_joint', contract says 'FL_hip_joint'" in message
    assert "joint at index 1 is 'FL_hip_joint', contract says 'FR_hip_joint'" in message
    assert "index 2" not in message and "obs" not in message.split(":", 1)[1]


def test_check_layout_rejects_leg_grouped_newton_order():
    contract = get_contract()
    newton = [f"{leg}_{part}_joint" for leg in ("FL", "FR", "RL", "RR") for part in ("hip", "thigh", "calf")]
    with pytest.raises(ContractError, match="joint at index 1 is 'FL_thigh_joint', contract says 'FR_hip_joint'"):
        check_layout(newton, layout(contract)[1], contract)
    with pytest.raises(ContractError, match="env has 11 joints, contract has 12"):
        check_layout(list(contract.joint_names)[:11], layout(contract)[1], contract)


def test_check_layout_rejects_a_missing_and_an_extra_base_lin_vel():
    full, reduced = get_contract(), get_contract("no_base_lin_vel")
    with pytest.raises(ContractError, match=r"obs terms missing from the env: \['base_lin_vel'\]") as info:
        check_layout(*layout(reduced), full)
    assert full.name in str(info.value) and full.hash in str(info.value)
    with pytest.raises(ContractError, match=r"obs terms the contract does not have: \['base_lin_vel'\]"):
        check_layout(*layout(full), reduced)


def test_check_layout_rejects_a_dim_mismatch_and_a_reordering():
    contract = get_contract()
    joints, terms = layout(contract)
    wide = [(name, 15 if name == "joint_vel" else dim) for name, dim in terms]
    with pytest.raises(ContractError, match="obs term 'joint_vel' has dim 15 in the env, 12 in the contract"):
        check_layout(joints, wide, contract)
    swapped = [terms[1], terms[0], *terms[2:]]
    with pytest.raises(ContractError, match=r"obs terms reordered: env \['base_ang_vel', 'base_lin_vel'"):
        check_layout(joints, swapped, contract)
    with_height_scan = [*terms, ("height_scan", 187)]
    with pytest.raises(ContractError, match=r"does not have: \['height_scan'\]"):
        check_layout(joints, with_height_scan, contract)


def test_make_isaaclab_env_without_isaaclab_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "isaaclab", None)  # import isaaclab -> ImportError, whatever is installed
    monkeypatch.setitem(sys.modules, "isaaclab.app", None)
    with pytest.raises(ImportError) as info:
        make_isaaclab_env(get_contract(), 16)
    message = str(info.value)
    assert "a1-sim2real[isaaclab]" in message and "Python 3.12" in message and "GPU" in message
    assert "Isaac Lab backend (GPU workstation)" in message  # the README section
    with pytest.raises(ValueError, match="num_envs"):
        make_isaaclab_env(get_contract(), 0)


def test_install_hint_points_at_an_existing_readme_section():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "## Isaac Lab backend (GPU workstation)" in readme
    assert "Isaac Lab backend (GPU workstation)" in isaaclab_backend.INSTALL_HINT


@pytest.mark.parametrize("variant", ["isaaclab3", "isaaclab3_unit_bounds"])
def test_normalized_to_raw_is_the_contract_mapping(variant):
    bounds = get_contract(variant).action_bounds
    low, high = np.asarray(bounds.low), np.asarray(bounds.high)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (5, 12))
    raw = normalized_to_raw(actions, bounds)
    assert raw.dtype == np.float32 and raw.shape == (5, 12)
    np.testing.assert_allclose(raw, bounds.to_raw(actions), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(normalized_to_raw(-np.ones((2, 12)), bounds), np.tile(low, (2, 1)), atol=1e-6)
    np.testing.assert_allclose(normalized_to_raw(np.ones((2, 12)), bounds), np.tile(high, (2, 1)), atol=1e-6)
    np.testing.assert_allclose(normalized_to_raw(np.zeros((1, 12)), bounds)[0], (low + high) / 2, atol=1e-6)
    # float32 round-off just beyond 1 is clipped, not refused
    np.testing.assert_allclose(normalized_to_raw(np.full((1, 12), 1 + 1e-7), bounds)[0], high, atol=1e-6)


def test_normalized_to_raw_refuses_bad_actions():
    bounds = get_contract().action_bounds
    with pytest.raises(ValueError, match=r"normalized to \[-1, 1\]"):
        normalized_to_raw(np.full((2, 12), 1.5), bounds)
    bad = np.zeros((2, 12))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        normalized_to_raw(bad, bounds)
    with pytest.raises(ValueError, match="shape"):
        normalized_to_raw(np.zeros((2, 11)), bounds)
    with pytest.raises(ValueError, match="shape"):
        normalized_to_raw(np.zeros(12), bounds)
