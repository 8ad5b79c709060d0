"""The fixed light rig of the renderers and its shading formula (numpy reference).

Lights are directional and fixed in the world (Z up, front -Y), like a studio around the
asset, so a surface has the same colour from every camera (Lambert is view independent):
the static orbits stay multi-view consistent. Shading, in linear RGB::

    rgb = albedo * (ambient + sum_k intensity_k * max(0, n . l_k))

with two-sided normals (a normal facing away from the camera is flipped), then clamped to
[0, 1] and encoded to sRGB. ``albedo = baseColorFactor * vertex colour * texture`` (texture
decoded from sRGB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from diffusion4d.cameras import orbit_position


@dataclass
class Light:
    name: str
    azimuth: float  # degrees, same convention as the cameras (0 = front, on -Y)
    elevation: float  # degrees above the XY plane
    intensity: float

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from the surface towards the light [3]."""
        return orbit_position(self.azimuth, self.elevation, 1.0)


@dataclass
class LightRig:
    lights: List[Light] = field(default_factory=lambda: [
        Light("key", 45.0, 35.0, 0.75),
        Light("fill", -60.0, 15.0, 0.35),
        Light("rim", 180.0, 30.0, 0.45),
        Light("bottom", 0.0, -80.0, 0.15),
    ])
    ambient: float = 0.25

    def arrays(self):
        """(directions [4, 3] float32, intensities [4] float32), padded to 4 lights."""
        dirs = np.zeros((4, 3), np.float32)
        ints = np.zeros(4, np.float32)
        for i, light in enumerate(self.lights[:4]):
            dirs[i], ints[i] = light.direction, light.intensity
        return dirs, ints


DEFAULT_RIG = LightRig()


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def shade(albedo_linear: np.ndarray, normal: np.ndarray, view_dir: np.ndarray, rig: LightRig = DEFAULT_RIG) -> np.ndarray:
    """Reference shading: sRGB colour [3] in [0, 1] of a surface point.

    Args:
        albedo_linear: [3] linear base colour.
        normal: [3] surface normal (any length, either orientation).
        view_dir: [3] vector from the surface towards the camera (decides the two-sided flip).
    """
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    if np.dot(n, view_dir) < 0:
        n = -n
    light = rig.ambient + sum(l.intensity * max(0.0, float(np.dot(n, l.direction))) for l in rig.lights)
    return linear_to_srgb(np.asarray(albedo_linear) * light)
