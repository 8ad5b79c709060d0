"""Camera conventions and orbit trajectories.

World frame: right-handed, **Z up**; the asset is normalised into a unit box centred at the
origin; its *front* faces **-Y** (glTF's +Z front after the Y-up -> Z-up conversion that
Blender's importer also applies: ``(x, y, z)_gltf -> (x, -z, y)_world``).

Cameras use the **OpenCV** convention: camera axes x right, y down, z forward (viewing
direction). A camera is a camera-to-world matrix ``c2w`` [4, 4] plus intrinsics ``K`` [3, 3]
in pixels, with pixel centres at integer+0.5 coordinates (pixel (0, 0) covers [0, 1) x [0, 1)).
OpenGL and Blender cameras look down -z with y up; both differ from OpenCV by flipping the
camera's y and z axes. Conversions live here and nowhere else.

Orbit angles: ``azimuth`` 0 deg is the front view (camera on the -Y axis), increasing
counter-clockwise seen from above (90 deg puts the camera on +X); ``elevation`` is the angle
above the XY plane; ``radius`` the distance to the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Sequence

import numpy as np

RenderMode = Literal["dynamic", "static", "front", "four_view"]
RENDER_MODES: tuple = ("dynamic", "static", "front", "four_view")

#: Blender's default camera (35 mm lens on a 32 mm sensor), as the Objaverse reference renders.
DEFAULT_FOV_DEG: float = math.degrees(2.0 * math.atan(16.0 / 35.0))

#: OpenCV <-> OpenGL/Blender camera axes: flip y and z (its own inverse).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])

#: glTF (Y up, front +Z) -> our world (Z up, front -Y).
GLTF_TO_WORLD = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
#: The four views of ``four_view`` mode: name -> azimuth in degrees.
FOUR_VIEWS: Dict[str, float] = {"front": 0.0, "right": 90.0, "back": 180.0, "left": 270.0}


def opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world [..., 4, 4] -> OpenGL camera-to-world (same world frame)."""
    return np.asarray(c2w) @ _FLIP_YZ


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world [..., 4, 4] -> OpenCV camera-to-world."""
    return np.asarray(c2w) @ _FLIP_YZ


def opencv_to_blender(c2w: np.ndarray) -> np.ndarray:
    """OpenCV c2w -> Blender camera ``matrix_world`` [..., 4, 4] (Blender's world is Z up, like ours)."""
    return opencv_to_opengl(c2w)


def blender_to_opencv(matrix_world: np.ndarray) -> np.ndarray:
    """Blender camera ``matrix_world`` [..., 4, 4] -> OpenCV c2w."""
    return opengl_to_opencv(matrix_world)


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K [3, 3] whose field of view ``fov_deg`` spans the larger image side
    (Blender's ``sensor_fit='AUTO'``), square pixels, principal point at the image centre."""
    if not (0.0 < fov_deg < 180.0):
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def orbit_position(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    """Camera centre [3] on the orbit sphere (see the module docstring for the angles)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return radius * np.array([math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)])


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world [4, 4] of a camera at ``eye`` looking at ``target``, world ``up`` on screen up."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: pick any right vector
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def project(points_world: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project world points [N, 3] to pixel coordinates [N, 2] and depths: returns [N, 3] = (u, v, z)."""
    w2c = np.linalg.inv(c2w)
    pts = np.asarray(points_world, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    uv = pts @ np.asarray(K).T
    return np.concatenate([uv[:, :2] / uv[:, 2:3], pts[:, 2:3]], axis=1)


@dataclass
class CameraFrame:
    """One frame of a rendered sequence."""

    index: int  # frame index in the clip (file ``{index:03d}.png``)
    time: float  # animation time normalised to [0, 1] (0 = first frame of the animation)
    time_seconds: float  # animation time in seconds
    azimuth: float  # degrees
    elevation: float  # degrees
    radius: float  # distance from the origin
    c2w: np.ndarray  # [4, 4] OpenCV camera-to-world
    K: np.ndarray  # [3, 3] intrinsics in pixels
    view: str = ""  # four_view mode: front/right/back/left; empty otherwise

    def to_json(self) -> dict:
        out = {
            "index": self.index,
            "time": self.time,
            "time_seconds": self.time_seconds,
            "azimuth": self.azimuth,
            "elevation": self.elevation,
            "radius": self.radius,
            "c2w": np.asarray(self.c2w).tolist(),
            "K": np.asarray(self.K).tolist(),
        }
        if self.view:
            out["view"] = self.view
        return out

    @classmethod
    def from_json(cls, d: dict) -> "CameraFrame":
        return cls(
            index=int(d["index"]),
            time=float(d["time"]),
            time_seconds=float(d["time_seconds"]),
            azimuth=float(d["azimuth"]),
            elevation=float(d["elevation"]),
            radius=float(d["radius"]),
            c2w=np.asarray(d["c2w"], dtype=np.float64).reshape(4, 4),
            K=np.asarray(d["K"], dtype=np.float64).reshape(3, 3),
            view=str(d.get("view", "")),
        )


@dataclass
class CameraTrajectory:
    """The cameras of one rendered sequence: the content of ``cameras.json``."""

    width: int
    height: int
    mode: str
    frames: List[CameraFrame] = field(default_factory=list)
    duration_seconds: float = 0.0  # length of the animation the times refer to
    convention: str = "opencv"

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def c2w(self) -> np.ndarray:
        """[N, 4, 4] OpenCV camera-to-world matrices."""
        return np.stack([f.c2w for f in self.frames])

    @property
    def K(self) -> np.ndarray:
        """[N, 3, 3] intrinsics."""
        return np.stack([f.K for f in self.frames])

    @property
    def times(self) -> np.ndarray:
        """[N] normalised animation times."""
        return np.array([f.time for f in self.frames], dtype=np.float64)

    def to_json(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "mode": self.mode,
            "convention": self.convention,
            "duration_seconds": self.duration_seconds,
            "frames": [f.to_json() for f in self.frames],
        }

    @classmethod
    def from_json(cls, d: dict) -> "CameraTrajectory":
        if d.get("convention", "opencv") != "opencv":
            raise ValueError(f"cameras.json convention {d.get('convention')!r} is not 'opencv'")
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            mode=str(d["mode"]),
            frames=[CameraFrame.from_json(f) for f in d["frames"]],
            duration_seconds=float(d.get("duration_seconds", 0.0)),
        )


def _normalised_time(i: int, n: int) -> float:
    return i / (n - 1) if n > 1 else 0.0


def orbit_trajectory(
    mode: RenderMode,
    num_frames: int = 24,
    *,
    start_azimuth: float = 0.0,
    elevation: float = 0.0,
    radius: float = 2.0,
    fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 256,
    height: int = 256,
    duration_seconds: float = 1.0,
) -> CameraTrajectory:
    """Cameras and animation times for one render mode.

    * ``dynamic``: frame i has azimuth ``start + 360 i / T`` and time ``i / (T - 1)``:
      the camera circles once while the animation plays from start to end.
    * ``static``: the same cameras with the animation frozen at time 0 (the "freeze-time" orbit).
    * ``front``: a fixed camera at ``start_azimuth`` while the animation plays.
    * ``four_view``: front/right/back/left (azimuth ``start + 0/90/180/270``), each a fixed camera
      while the animation plays; frames are view-major (index ``v * T + i``), ``4 T`` in all.

    Returns a :class:`CameraTrajectory` whose frames are in file order.
    """
    if mode not in RENDER_MODES:
        raise ValueError(f"unknown render mode {mode!r}; valid modes: {', '.join(RENDER_MODES)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    K = intrinsics_from_fov(fov_deg, width, height)
    views = list(FOUR_VIEWS.items()) if mode == "four_view" else [("", 0.0)]
    frames: List[CameraFrame] = []
    for view_index, (view, view_offset) in enumerate(views):
        for i in range(num_frames):
            if mode in ("dynamic", "static"):
                azimuth = start_azimuth + 360.0 * i / num_frames
            else:
                azimuth = start_azimuth + view_offset
            azimuth %= 360.0
            t = 0.0 if mode == "static" else _normalised_time(i, num_frames)
            c2w = look_at(orbit_position(azimuth, elevation, radius))
            frames.append(
                CameraFrame(
                    index=view_index * num_frames + i,
                    time=t,
                    time_seconds=t * duration_seconds,
                    azimuth=azimuth,
                    elevation=elevation,
                    radius=radius,
                    c2w=c2w,
                    K=K.copy(),
                    view=view,
                )
            )
    return CameraTrajectory(width=width, height=height, mode=mode, frames=frames, duration_seconds=duration_seconds)
