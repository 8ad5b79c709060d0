"""The description of one procedural asset and the interface every motion family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .geometry import MeshData, make_shape, transformed
from .glb_writer import GlbBuilder
from .materials import PALETTE, pattern_png, srgb_to_linear

DURATION_S = 2.0  # every animation loops over this many seconds
MOTION_BOX_HALF = 0.75  # animated vertices stay inside [-0.75, 0.75]^3


@dataclass
class AssetSpec:
    """Everything that determines one asset; the GLB and the caption are pure functions of it.

    Attributes:
        uid: ``proc-s{seed}-{index:04d}``.
        seed, index: the generator seed and the asset's position in the set.
        family: one of ``MOTION_FAMILIES``.
        variant: the family's sub-motion (e.g. "bounce", "wings").
        shape: primitive of the main body (``geometry.SHAPES``).
        colour: palette name of the main body; ``colour2`` for second parts.
        pattern: "checkered" | "striped" base-colour texture, or None for a plain colour.
        interpolation: sampler interpolation of every channel, None when static.
        motion_amplitude: relative strength in [0, 1] (0 static, 1 the family's largest motion).
        duration_s: loop length in seconds (0 when static).
        params: family-specific numbers (angles in degrees, distances in scene units).
    """

    uid: str
    seed: int
    index: int
    family: str
    variant: str
    shape: str
    colour: str
    colour2: str
    pattern: str | None
    interpolation: str | None
    motion_amplitude: float
    duration_s: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return asdict(self)


class MotionFamily(ABC):
    """A kind of motion: samples its parameters, names itself in captions, builds the glTF."""

    name: str = ""

    @abstractmethod
    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        """Fill ``spec.variant`` and ``spec.params`` (``spec.motion_amplitude`` is set)."""

    @abstractmethod
    def phrase(self, spec: AssetSpec) -> str:
        """The motion part of the caption, e.g. "spinning" or "with a swinging arm"."""

    @abstractmethod
    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        """Add meshes, nodes and animations to ``builder``; return the scene's root nodes."""


def body_material(builder: GlbBuilder, spec: AssetSpec) -> int:
    """The main body's material: plain palette colour, or a pattern texture of it."""
    texture = pattern_png(spec.colour, spec.pattern) if spec.pattern else None
    return builder.add_material(f"{spec.colour}_body", srgb_to_linear(PALETTE[spec.colour]),
                                texture_png=texture)


def accent_material(builder: GlbBuilder, spec: AssetSpec) -> int:
    """Plain material in the secondary colour, for extra parts."""
    return builder.add_material(f"{spec.colour2}_part", srgb_to_linear(PALETTE[spec.colour2]))


def sized_shape(shape: str, size: float | tuple[float, float, float],
                offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> MeshData:
    """A primitive scaled from the unit box by ``size`` (scalar or per axis), then moved."""
    m = np.diag(list(np.broadcast_to(np.asarray(size, dtype=np.float64), (3,))) + [1.0])
    m[:3, 3] = offset
    return transformed(make_shape(shape), m)


def loop_phase(t: float, spec: AssetSpec, cycles: int = 1) -> float:
    """Angle 2*pi*cycles*t/duration, so every motion built on it loops."""
    return 2.0 * np.pi * cycles * t / spec.duration_s
