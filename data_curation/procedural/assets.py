"""Per-asset sampling, captioning and GLB building (pure functions of ``(seed, index)``)."""

from __future__ import annotations

import numpy as np

from .geometry import SHAPES
from .glb_writer import GlbBuilder
from .keyframes import INTERPOLATIONS
from .materials import COLOURS, PATTERNS
from .motion_morph import MorphFamily
from .motion_multipart import MultipartFamily
from .motion_rigid import RotationFamily, ScalingFamily, StaticFamily, TranslationFamily
from .motion_skin import ArticulatedFamily
from .spec import DURATION_S, AssetSpec, MotionFamily

FAMILIES: dict[str, MotionFamily] = {f.name: f for f in (
    RotationFamily(), TranslationFamily(), ScalingFamily(), ArticulatedFamily(), MorphFamily(),
    MultipartFamily(), StaticFamily())}
MOTION_FAMILIES: tuple[str, ...] = tuple(FAMILIES)
TEXTURE_PROBABILITY = 0.35
# amplitude tiers (small, medium, large), cycled so each family meets different tiers
_AMPLITUDE_TIERS = ((0.1, 0.35), (0.35, 0.7), (0.7, 1.0))


def asset_uid(seed: int, index: int) -> str:
    """The asset's uid, ``proc-s{seed}-{index:04d}``."""
    return f"proc-s{seed}-{index:04d}"


def colour_order(seed: int) -> tuple[str, ...]:
    """The order in which the assets of the set generated with ``seed`` take the palette's colours:
    a permutation of :data:`COLOURS` drawn from ``seed`` alone, so asset ``index`` gets
    ``colour_order(seed)[index % len(COLOURS)]`` and any ``len(COLOURS)`` consecutive assets have
    distinct colours (each colour word then names one object, and the colours are used evenly)."""
    return tuple(str(c) for c in np.random.default_rng([seed]).permutation(COLOURS))


def sample_asset_spec(seed: int, index: int, amplitude_scale: float = 1.0, motion_from: int | None = None) -> AssetSpec:
    """Draw the parameters of asset ``index`` of the set generated with ``seed``.

    The family is round-robin over :data:`MOTION_FAMILIES` (so any ``count`` of at least
    ``len(MOTION_FAMILIES)`` covers every family); interpolation cycles over LINEAR,
    CUBICSPLINE and STEP; the colour is round-robin over :func:`colour_order`; everything
    else (second colour, pattern, shape, amplitude, motion parameters) comes from a generator seeded with
    ``(seed, index)``, so an asset does not depend on how many others are generated.

    ``amplitude_scale`` in (0, 1] gives a variant of the same asset (same shape, colours,
    caption and kind of motion) whose motion amplitude is scaled by it; its uid is
    ``<uid>-a<scale>``. Variants give one object several motion magnitudes.

    ``motion_from`` (another index of the same set) gives a motion swap: the object of asset
    ``index`` (shape, colours, pattern) with the motion of asset ``motion_from`` (family,
    interpolation, amplitude and motion parameters, drawn from ``motion_from``'s generator as
    that asset draws them; shape-dependent choices follow this object's shape). Its uid is
    ``<uid>-m<motion_from:04d>`` and its caption names this object with that motion. Swaps give
    one motion several objects, so a motion magnitude does not name an object.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    if not 0 < amplitude_scale <= 1:
        raise ValueError(f"amplitude_scale must be in (0, 1], got {amplitude_scale}")
    if motion_from is not None and (motion_from < 0 or motion_from == index):
        raise ValueError(f"motion_from must be another non-negative index, got {motion_from} for index {index}")
    colour, colour2, pattern, shape, rng = _appearance(seed, index)
    mover = index if motion_from is None else motion_from
    if motion_from is not None:
        *_, rng = _appearance(seed, mover)  # the mover's stream, past its appearance draws
    family = MOTION_FAMILIES[mover % len(MOTION_FAMILIES)]
    low, high = _AMPLITUDE_TIERS[(mover + mover // len(MOTION_FAMILIES)) % len(_AMPLITUDE_TIERS)]
    amplitude = round(float(rng.uniform(low, high)) * amplitude_scale, 3)
    static = family == "static"
    suffix = ("" if motion_from is None else f"-m{motion_from:04d}") + ("" if amplitude_scale == 1 else f"-a{amplitude_scale:g}")
    spec = AssetSpec(
        uid=asset_uid(seed, index) + suffix, seed=seed, index=index, family=family, variant="",
        shape=shape, colour=colour, colour2=colour2, pattern=pattern,
        interpolation=None if static else INTERPOLATIONS[mover % len(INTERPOLATIONS)],
        motion_amplitude=0.0 if static else amplitude, duration_s=0.0 if static else DURATION_S)
    FAMILIES[family].sample(rng, spec)
    spec.params = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in spec.params.items()}
    return spec


def _appearance(seed: int, index: int) -> tuple[str, str, str | None, str, np.random.Generator]:
    """Colour, second colour, pattern and shape of asset ``index``, and its generator after those draws."""
    rng = np.random.default_rng([seed, index])
    colour = colour_order(seed)[index % len(COLOURS)]
    colour2 = str(rng.choice([c for c in COLOURS if c != colour]))
    pattern = str(rng.choice(PATTERNS)) if rng.random() < TEXTURE_PROBABILITY else None
    shape = str(rng.choice(SHAPES))
    return colour, colour2, pattern, shape, rng


def caption_for(spec: AssetSpec) -> str:
    """Short regular caption: "a|an <colour> [checkered|striped] <shape> <motion phrase>"."""
    words = [spec.colour] + ([spec.pattern] if spec.pattern else []) + [spec.shape]
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words, FAMILIES[spec.family].phrase(spec)])


def build_asset_glb(spec: AssetSpec) -> bytes:
    """Build the binary glTF 2.0 (GLB) bytes of one asset; deterministic in ``spec``."""
    builder = GlbBuilder()
    roots = FAMILIES[spec.family].build(builder, spec)
    # "object": the original asset's uid, shared by its amplitude variants and motion swaps
    builder.gltf.asset.extras = {"uid": spec.uid, "caption": caption_for(spec), "object": asset_uid(spec.seed, spec.index)}
    return builder.to_glb(roots)
