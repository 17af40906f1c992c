"""The A1 model the renderer draws: the simulator's robot with the URDF's visual OBJ meshes (MuJoCo's URDF parser
drops ``<visual>``), a checker floor, a sky, lights, and the check that its qpos layout is the physics model's.

The model is for drawing only: the mesh geoms are massless and do not collide; the collision shapes are hidden
behind them (or drawn in orange when the meshes cannot be loaded).
"""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import mujoco
import numpy as np

from a1_common.sim.a1_model import build_a1_spec, urdf_path
from a1_contract import TaskContract

# Colours of the A1's visual meshes (the OBJ files carry no usable colours; the trunk texture is a dark
# carbon pattern). Close to the real robot: dark body, light thighs, dark calves.
_MESH_RGBA = {
    "trunk": (0.22, 0.22, 0.24, 1.0),
    "hip": (0.30, 0.30, 0.32, 1.0),
    "thigh": (0.78, 0.78, 0.76, 1.0),
    "thigh_mirror": (0.78, 0.78, 0.76, 1.0),
    "calf": (0.16, 0.16, 0.17, 1.0),
}
_COLLISION_RGBA = (0.85, 0.45, 0.1, 1.0)
_HIDDEN_GROUP = 3  # not drawn with the default mjvOption.geomgroup (groups 0-2 visible)
_VISUAL_GROUP = 2


def _rpy_quat(rpy: Sequence[float]) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes X, Y, Z) as a MuJoCo quaternion (w, x, y, z)."""
    r, p, y = (0.5 * float(v) for v in rpy)
    qx = np.array([math.cos(r), math.sin(r), 0.0, 0.0])
    qy = np.array([math.cos(p), 0.0, math.sin(p), 0.0])
    qz = np.array([math.cos(y), 0.0, 0.0, math.sin(y)])
    out = np.zeros(4)
    tmp = np.zeros(4)
    mujoco.mju_mulQuat(tmp, qz, qy)
    mujoco.mju_mulQuat(out, tmp, qx)
    return out


def _urdf_visual_meshes(path: str) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """(link, mesh file, pos, quat, scale) of every ``<visual>`` mesh in the URDF."""
    root = ET.parse(path).getroot()
    base = os.path.dirname(path)
    out = []
    for link in root.iter("link"):
        for visual in link.findall("visual"):
            mesh = visual.find("geometry/mesh")
            if mesh is None:
                continue
            origin = visual.find("origin")
            xyz = origin.get("xyz", "0 0 0") if origin is not None else "0 0 0"
            rpy = origin.get("rpy", "0 0 0") if origin is not None else "0 0 0"
            filename = mesh.get("filename", "")
            if filename.startswith("package://"):
                filename = filename.split("/", 3)[-1]
            out.append(
                (
                    link.get("name", ""),
                    os.path.join(base, filename),
                    np.array([float(v) for v in xyz.split()]),
                    _rpy_quat([float(v) for v in rpy.split()]),
                    np.array([float(v) for v in mesh.get("scale", "1 1 1").split()]),
                )
            )
    return out


def _decorate(spec: mujoco.MjSpec, width: int, height: int) -> None:
    """Checker floor, sky gradient, lights and an offscreen buffer big enough for ``width x height``."""
    spec.visual.global_.offwidth = max(int(width), 640)
    spec.visual.global_.offheight = max(int(height), 480)
    spec.visual.quality.shadowsize = 2048
    spec.visual.map.shadowclip = 3.0  # half-size of the directional light's shadow box, x model extent
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
    spec.visual.headlight.specular = [0.1, 0.1, 0.1]
    spec.add_texture(
        name="sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.55, 0.7, 0.85],
        rgb2=[0.95, 0.97, 1.0],
        width=256,
        height=256,
    )
    spec.add_texture(
        name="checker",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.42, 0.47, 0.52],
        rgb2=[0.62, 0.67, 0.72],
        mark=mujoco.mjtMark.mjMARK_EDGE,
        markrgb=[0.8, 0.82, 0.85],
        width=256,
        height=256,
    )
    floor_mat = spec.add_material(name="floor_checker", texrepeat=[2, 2], texuniform=True, specular=0.1, shininess=0.1)
    floor_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "checker"
    floor = spec.geom("floor")
    if floor is not None:
        floor.material = "floor_checker"
        floor.rgba = [1.0, 1.0, 1.0, 1.0]
        floor.size = [0.0, 0.0, 0.05]
    for light in spec.lights:  # the simulator's world spotlight makes a hot spot at the origin: off
        light.active = False
    # A directional light aimed from behind the camera at every frame (a1_common.sim.render.A1Renderer._aim_light):
    # the robot's shadow falls in view, away from the camera, and the floor's shading does not change as the robot
    # moves (still frames stay still, GIFs stay small).
    spec.worldbody.add_light(
        name="follow",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0.0, 0.0, 8.0],
        dir=[0.0, 0.0, -1.0],
        diffuse=[0.6, 0.6, 0.6],
        specular=[0.2, 0.2, 0.2],
        castshadow=True,
    )


def _add_meshes(spec: mujoco.MjSpec) -> int:
    """Add the URDF's visual OBJ meshes to ``spec`` (non-colliding, massless); returns how many."""
    visuals = _urdf_visual_meshes(urdf_path())
    added_mesh: dict[tuple[str, tuple[float, ...]], str] = {}
    count = 0
    for link, file, pos, quat, scale in visuals:
        body = spec.body(link)
        if body is None:
            raise RuntimeError(f"URDF visual of link {link!r}: no such body in the model")
        key = os.path.splitext(os.path.basename(file))[0]
        if (key, tuple(scale)) not in added_mesh:
            name = f"vis_{key}_{len(added_mesh)}"
            mesh = spec.add_mesh(name=name, file=file, scale=scale)
            mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
            added_mesh[(key, tuple(scale))] = name
        rgba = _MESH_RGBA.get(key, (0.5, 0.5, 0.5, 1.0))
        body.add_geom(
            name=f"vis_{link}",
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=added_mesh[(key, tuple(scale))],
            pos=pos,
            quat=quat,
            contype=0,
            conaffinity=0,
            group=_VISUAL_GROUP,
            density=0.0,
            mass=0.0,
            rgba=rgba,
        )
        count += 1
    return count


def build_visual_model(
    contract: TaskContract, *, meshes: bool = True, width: int = 640, height: int = 480
) -> tuple[mujoco.MjModel, bool]:
    """The A1 model for rendering and whether it shows the URDF meshes (else the collision shapes).

    Starts from ``build_a1_spec(contract)`` (MuJoCo's URDF parser drops ``<visual>``) and adds the
    URDF's visual meshes here. If the meshes fail to load, falls back to the collision geoms with a
    warning.
    """
    if meshes:
        try:
            spec = build_a1_spec(contract)
            spec.compiler.discardvisual = False  # keep the non-colliding mesh geoms added below
            has_meshes = _add_meshes(spec) > 0
            if has_meshes:
                for geom in spec.geoms:  # hide collision shapes behind the meshes
                    if geom.type != mujoco.mjtGeom.mjGEOM_MESH and geom.name != "floor":
                        geom.group = _HIDDEN_GROUP
                _decorate(spec, width, height)
                return spec.compile(), True
        except Exception as exc:  # noqa: BLE001 - any mesh problem falls back to the collision geoms
            warnings.warn(f"A1 visual meshes unavailable ({exc}); rendering collision geoms", stacklevel=2)
    spec = build_a1_spec(contract)
    for geom in spec.geoms:
        if geom.name != "floor":
            geom.rgba = _COLLISION_RGBA
    _decorate(spec, width, height)
    return spec.compile(), False


def check_same_qpos_layout(visual: mujoco.MjModel, physics: mujoco.MjModel) -> None:
    """Raise ``ValueError`` unless both models have the same nq and the same qpos address per joint name."""
    problems = []
    if visual.nq != physics.nq:
        problems.append(f"nq {visual.nq} (visual) != {physics.nq} (physics)")
    for j in range(physics.njnt):
        name = mujoco.mj_id2name(physics, mujoco.mjtObj.mjOBJ_JOINT, j)
        jv = mujoco.mj_name2id(visual, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jv < 0:
            problems.append(f"joint {name!r} missing in the visual model")
        elif visual.jnt_qposadr[jv] != physics.jnt_qposadr[j] or visual.jnt_type[jv] != physics.jnt_type[j]:
            problems.append(
                f"joint {name!r}: qpos address {visual.jnt_qposadr[jv]} (visual) != {physics.jnt_qposadr[j]} (physics)"
            )
    if problems:
        raise ValueError("visual model qpos layout differs from the physics model: " + "; ".join(problems))
