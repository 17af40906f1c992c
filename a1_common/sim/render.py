"""Offscreen rendering of the simulated A1 (MuJoCo ``Renderer``, EGL/OSMesa, no display needed).

The renderer owns a *visual* copy of the simulator's model (:mod:`a1_common.sim.visual_model`): the same robot
with the URDF's OBJ meshes, a checker floor and a sky. It never steps physics; :meth:`A1Renderer.render` takes a
qpos row of the physics model (``A1MujocoVecEnv.qpos[i]``), runs forward kinematics and draws it from a camera
that follows the trunk. The qpos layouts of both models are checked to be identical at construction.

Headless machines: MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when ``mujoco`` is first
imported. This module sets ``MUJOCO_GL=egl`` when unset; if ``mujoco`` was imported earlier without
it, the backend is switched to the requested one before the first ``Renderer`` is made.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import importlib  # noqa: E402
import math  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from a1_common.sim.a1_model import build_a1_model  # noqa: E402
from a1_common.sim.visual_model import build_visual_model, check_same_qpos_layout  # noqa: E402
from a1_contract import TaskContract, robot  # noqa: E402


def _ensure_gl_backend() -> str:
    """Make ``mujoco.Renderer`` use ``$MUJOCO_GL`` even if ``mujoco`` was imported before it was set."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    want = os.environ["MUJOCO_GL"].lower().strip()
    try:
        gl_context = importlib.import_module("mujoco.rendering.classic.gl_context")
    except ImportError:  # older MuJoCo layout
        gl_context = importlib.import_module("mujoco.gl_context")
    have = getattr(gl_context, "_MUJOCO_GL", want)
    if have != want and sys.platform.startswith("linux") and want in ("egl", "osmesa"):
        # mujoco chose its backend at import time (before MUJOCO_GL was set); switch to the requested one.
        setattr(gl_context, "GLContext", importlib.import_module(f"mujoco.{want}").GLContext)  # noqa: B010
        setattr(gl_context, "_MUJOCO_GL", want)  # noqa: B010 (module attributes mypy cannot see)
    return want


class A1Renderer:
    """Draws A1 states (physics-model qpos rows) from a camera that follows the trunk.

    Args:
        contract: the task contract the physics model was built from.
        width, height: image size in pixels.
        meshes: draw the URDF's visual meshes (default); ``False`` draws the collision geoms.
        distance, elevation: camera distance (m) and elevation (deg, negative looks down).
        azimuth: camera direction relative to the robot's heading (deg); 0 looks from behind, the
            default 225 is a front-left three-quarter view.
        follow_heading: turn the camera with the robot's yaw (else ``azimuth`` is a world direction).
        deadband: ``(metres, degrees)``; when non-zero the camera is stateful and only moves when the
            trunk leaves this band around its current aim (steady shots for films of one robot, which
            also keeps GIFs small). ``(0, 0)`` (default): every image is aimed exactly at the trunk.
    """

    def __init__(
        self,
        contract: TaskContract,
        width: int = 640,
        height: int = 480,
        *,
        meshes: bool = True,
        distance: float = 1.25,
        elevation: float = -22.0,
        azimuth: float = 225.0,
        follow_heading: bool = True,
        deadband: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        _ensure_gl_backend()
        self.contract = contract
        self.width, self.height = int(width), int(height)
        self.model, self.has_meshes = build_visual_model(contract, meshes=meshes, width=width, height=height)
        check_same_qpos_layout(self.model, build_a1_model(contract))
        self.data = mujoco.MjData(self.model)
        self.trunk_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, robot.BASE_BODY)
        self.light = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_LIGHT, "follow")
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.distance = distance
        self.camera.elevation = elevation
        self.azimuth = azimuth
        self.follow_heading = follow_heading
        self.deadband = (float(deadband[0]), math.radians(float(deadband[1])))
        self._aim: tuple[np.ndarray, float] | None = None
        self.option = mujoco.MjvOption()
        try:
            self._renderer = mujoco.Renderer(self.model, height=self.height, width=self.width)
        except Exception as exc:
            raise RuntimeError(
                f"could not create a MuJoCo offscreen renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {exc}. "
                "On a machine without a display set MUJOCO_GL=egl (needs libEGL, e.g. apt install libegl1 "
                "libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt install libosmesa6), before Python imports mujoco."
            ) from exc
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = True
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False

    def render(self, qpos: np.ndarray, command: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 image of the robot at ``qpos`` (physics-model layout).

        ``command``: optional (v_x, v_y, w_z) velocity command, drawn as a green arrow in the robot's
        heading frame from above the trunk (length = speed in m/s).
        """
        qpos = np.asarray(qpos, dtype=np.float64)
        if qpos.shape != (self.model.nq,):
            raise ValueError(f"qpos must have shape ({self.model.nq},), got {qpos.shape}")
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        trunk_pos = self.data.xpos[self.trunk_body].copy()
        yaw = self._yaw(qpos[3:7])
        target = np.array([trunk_pos[0], trunk_pos[1], max(trunk_pos[2] - 0.1, 0.12)])
        target, cam_yaw = self._aim_at(target, yaw if self.follow_heading else 0.0)
        cam = self.camera
        cam.lookat[:] = target
        cam.azimuth = self.azimuth + math.degrees(cam_yaw)
        self._aim_light(target, math.radians(cam.azimuth))
        self._renderer.update_scene(self.data, camera=cam, scene_option=self.option)
        if command is not None:
            self._draw_command(np.asarray(command, dtype=np.float64), trunk_pos, yaw)
        image: np.ndarray = self._renderer.render().copy()
        return image

    def _aim_light(self, target: np.ndarray, azimuth: float) -> None:
        """Point the shadow light down and away from the camera, 30 deg to its left, over ``target``."""
        if self.light < 0:
            return
        a = azimuth + math.radians(30.0)
        direction = np.array([0.35 * math.cos(a), 0.35 * math.sin(a), -1.0])
        direction /= np.linalg.norm(direction)
        self.data.light_xdir[self.light] = direction
        self.data.light_xpos[self.light] = target - 8.0 * direction

    def reset_camera(self) -> None:
        """Forget the stateful camera's aim (``deadband``); the next image is aimed at the trunk."""
        self._aim = None

    def _aim_at(self, target: np.ndarray, yaw: float) -> tuple[np.ndarray, float]:
        band_pos, band_yaw = self.deadband
        if (band_pos <= 0.0 and band_yaw <= 0.0) or self._aim is None:
            self._aim = (target, yaw)
            return self._aim
        aim, aim_yaw = self._aim
        offset = target - aim
        dist = float(np.linalg.norm(offset))
        if dist > band_pos:  # drag the aim along, just enough to keep the trunk inside the band
            aim = aim + offset * (1.0 - band_pos / dist)
        dyaw = math.remainder(yaw - aim_yaw, math.tau)
        if abs(dyaw) > band_yaw:
            aim_yaw = aim_yaw + dyaw - math.copysign(band_yaw, dyaw)
        self._aim = (aim, aim_yaw)
        return self._aim

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> A1Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @staticmethod
    def _yaw(quat: np.ndarray) -> float:
        w, x, y, z = quat
        return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))

    def _draw_command(self, command: np.ndarray, trunk_pos: np.ndarray, yaw: float) -> None:
        scene = self._renderer.scene
        vx, vy = float(command[0]), float(command[1])
        speed = math.hypot(vx, vy)
        if speed < 1e-3 or scene.ngeom >= scene.maxgeom:
            return
        c, s = math.cos(yaw), math.sin(yaw)
        direction = np.array([c * vx - s * vy, s * vx + c * vy, 0.0]) / speed
        start = trunk_pos + np.array([0.0, 0.0, 0.15])
        end = start + direction * max(speed, 0.1) * 0.5
        geom = scene.geoms[scene.ngeom]
        mujoco.mjv_initGeom(
            geom,
            mujoco.mjtGeom.mjGEOM_ARROW,
            np.zeros(3),
            np.zeros(3),
            np.zeros(9),
            np.array([0.1, 0.85, 0.2, 1.0], dtype=np.float32),
        )
        mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, 0.012, start, end)
        scene.ngeom += 1


def render_grid(
    frames_list: Sequence[np.ndarray], cols: int | None = None, pad: int = 4, background: int = 255
) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 frames into one image, row-major, ``cols`` per row
    (default: ceil(sqrt(n))), separated by ``pad`` pixels of ``background``."""
    frames = [np.asarray(f) for f in frames_list]
    if not frames:
        raise ValueError("render_grid needs at least one frame")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames) or len(shape) != 3:
        raise ValueError(f"all frames must have the same (H, W, C) shape, got {[f.shape for f in frames]}")
    n = len(frames)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w, ch = shape
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, ch), background, dtype=np.uint8)
    for k, frame in enumerate(frames):
        r, col = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = frame
    return grid
