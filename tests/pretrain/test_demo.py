"""The A1 demo (``a1-sim-demo`` / ``python -m pretrain demo``) and the offscreen renderer."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from a1_common.sim.a1_model import build_a1_model, default_qpos  # noqa: E402
from a1_common.sim.render import A1Renderer, render_grid  # noqa: E402
from a1_common.sim.visual_model import check_same_qpos_layout  # noqa: E402
from a1_contract import get_contract  # noqa: E402
from pretrain import demo  # noqa: E402

# The robot is dark (trunk, calves), the floor and sky are light: "dark" pixels mark the robot.
DARK = 50


def dark_fraction(image: np.ndarray) -> float:
    return float((np.asarray(image)[..., :3].max(axis=-1) < DARK).mean())


@pytest.fixture(scope="module")
def contract():
    return get_contract()


@pytest.fixture(scope="module")
def renderer(contract):
    r = A1Renderer(contract, *demo.SNAPSHOT_SIZE)
    yield r
    r.close()


@pytest.fixture(scope="module")
def standing_qpos(contract):
    qpos = default_qpos(build_a1_model(contract), contract)
    qpos[2] = 0.27  # feet on the floor
    return qpos


def hidden(qpos: np.ndarray) -> np.ndarray:
    """The same state with the robot under the (opaque) floor: the camera aims at the same spot."""
    q = qpos.copy()
    q[2] = -5.0
    return q


def test_renderer_draws_the_robot(renderer, standing_qpos):
    assert renderer.has_meshes, "the URDF's OBJ meshes should load"
    image = renderer.render(standing_qpos)
    empty = renderer.render(hidden(standing_qpos))
    w, h = demo.SNAPSHOT_SIZE
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
    assert image.std() > 20.0, "blank image"
    assert empty.std() > 5.0, "the floor should be visible"
    assert dark_fraction(image) > 0.005, "robot not visible"
    assert dark_fraction(empty) < 0.001
    assert np.abs(image.astype(int) - empty).mean() > 5.0


def test_renderer_different_qpos_give_different_images(renderer, standing_qpos, contract):
    info_model = build_a1_model(contract)
    thigh = mujoco.mj_name2id(info_model, mujoco.mjtObj.mjOBJ_JOINT, "FL_thigh_joint")
    crouched = standing_qpos.copy()
    crouched[info_model.jnt_qposadr[thigh]] += 0.8
    a = renderer.render(standing_qpos)
    b = renderer.render(crouched)
    c = renderer.render(standing_qpos, command=np.array([1.0, 0.0, 0.0]))
    assert np.array_equal(a, renderer.render(standing_qpos)), "rendering should be deterministic"
    assert np.abs(a.astype(int) - b).mean() > 0.5
    assert np.abs(a.astype(int) - c).mean() > 0.1, "the command arrow should be drawn"
    with pytest.raises(ValueError, match="qpos must have shape"):
        renderer.render(standing_qpos[:-1])


def test_qpos_layout_check_rejects_other_models(contract):
    other = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><freejoint name='root'/><geom size='0.1'/></body></worldbody></mujoco>"
    )
    with pytest.raises(ValueError, match="qpos layout"):
        check_same_qpos_layout(other, build_a1_model(contract))


def test_render_grid_tiles_frames():
    frames = [np.full((10, 20, 3), k, dtype=np.uint8) for k in range(5)]
    grid = render_grid(frames, pad=2)
    assert grid.shape == (2 * 10 + 3 * 2, 3 * 20 + 4 * 2, 3)
    assert grid[2, 2 + 20 + 2, 0] == 1 and grid[2 + 10 + 2, 2, 0] == 3
    with pytest.raises(ValueError):
        render_grid([])


def test_demo_writes_files_and_sane_summary(tmp_path, renderer, standing_qpos):
    assert demo.main(["--num-envs", "4", "--seconds", "1", "--out", tmp_path]) == 0

    videos = [tmp_path / name for name in ("a1_demo.gif", "a1_demo.mp4") if (tmp_path / name).exists()]
    assert len(videos) == 1, "expected a1_demo.gif or a1_demo.mp4"
    assert 0 < videos[0].stat().st_size < demo.MAX_VIDEO_BYTES
    for name in ("a1_demo.png", "a1_demo_summary.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name

    grid = np.asarray(Image.open(tmp_path / "a1_demo.png").convert("RGB"))
    assert grid.std() > 20.0
    w, h = demo.SNAPSHOT_SIZE
    first = grid[4 + 20 : 4 + h, 4 : 4 + w]  # first tile, below its text label
    assert dark_fraction(first) > 0.005, "robot 0 not visible in the snapshot grid"
    assert dark_fraction(renderer.render(hidden(standing_qpos))[20:]) < 0.001
    plot = np.asarray(Image.open(tmp_path / "a1_demo_summary.png").convert("RGB"))
    assert plot.std() > 10.0

    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["num_envs"] == 4 and s["policy_steps"] == 50 and s["sim_seconds"] == pytest.approx(1.0)
    assert s["episodes_terminated"] == 0, "holding the default pose for 1 s must not fall"
    assert s["episodes_truncated"] == 0 and s["physics_diverged"] == 0
    assert 0.2 < s["trunk_height_mean"] < 0.45
    assert 0.2 < s["trunk_height_final_mean"] < 0.35  # settled on its feet
    assert s["trunk_height_min"] > 0.15
    assert np.isfinite(s["step_reward_mean"]) and all(np.isfinite(v) for v in s["reward_terms_mean"].values())
    assert s["policy_steps_per_s"] > 0 and s["wall_seconds"] > 0
    assert s["video_frames"] == 25 and s["video_fps"] == pytest.approx(25.0)
