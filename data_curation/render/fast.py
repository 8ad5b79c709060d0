"""The fast renderer: OpenGL 3.3 through moderngl on a headless EGL context.

On CPU machines EGL runs on Mesa llvmpipe; on NVIDIA machines on the GPU. One context per
process (:func:`gl_context`), reused by every render. Each frame: posed triangles (from
:meth:`Scene.evaluate`) are normalised into the unit box, uploaded, drawn with a depth test
into a 4x MSAA framebuffer with a transparent background, shaded with the fixed light rig
(:mod:`.lighting`), resolved and read back as straight-alpha RGBA uint8.

Cameras: OpenCV ``c2w`` + ``K`` -> OpenGL view (``opencv_to_opengl``) and a projection that
honours the focal lengths *and* the principal point (:func:`projection_from_K`), so a world
point lands on the pixel that :func:`diffusion4d.cameras.project` predicts.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from diffusion4d.cameras import opencv_to_opengl

from ..gltf.scene import DrawItem
from .lighting import DEFAULT_RIG, LightRig

_CONTEXT = None

_VERTEX = """
#version 330
uniform mat4 mvp;
in vec3 in_pos; in vec3 in_normal; in vec4 in_color; in vec2 in_uv;
out vec3 v_world; out vec3 v_normal; out vec4 v_color; out vec2 v_uv;
void main() {
    v_world = in_pos; v_normal = in_normal; v_color = in_color; v_uv = in_uv;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""
_FRAGMENT = """
#version 330
uniform vec4 base_color; uniform bool has_tex; uniform sampler2D tex;
uniform int alpha_mode; uniform float alpha_cutoff;
uniform vec3 cam_pos; uniform vec3 light_dir[4]; uniform float light_int[4]; uniform float ambient;
in vec3 v_world; in vec3 v_normal; in vec4 v_color; in vec2 v_uv;
out vec4 f_color;
vec3 to_linear(vec3 c) { return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(0.04045, c)); }
vec3 to_srgb(vec3 c) { c = clamp(c, 0.0, 1.0); return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c)); }
void main() {
    vec4 albedo = base_color * v_color;
    if (has_tex) { vec4 t = texture(tex, v_uv); albedo *= vec4(to_linear(t.rgb), t.a); }
    float a = albedo.a;
    if (alpha_mode == 0) a = 1.0;
    else if (alpha_mode == 1) { if (a < alpha_cutoff) discard; a = 1.0; }
    vec3 n = normalize(v_normal);
    if (dot(n, cam_pos - v_world) < 0.0) n = -n;
    float light = ambient;
    for (int i = 0; i < 4; i++) light += light_int[i] * max(dot(n, light_dir[i]), 0.0);
    vec3 rgb = to_srgb(albedo.rgb * light);
    f_color = vec4(rgb * a, a);
}
"""
_ALPHA_MODES = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}


def gl_context():
    """The process-wide headless moderngl context (created on first use)."""
    global _CONTEXT
    if _CONTEXT is None:
        import importlib.util

        import moderngl

        # Triton (pulled in later by torch._dynamo <- torchvision <- torchmetrics) bundles its own
        # LLVM; loading it *after* Mesa llvmpipe's LLVM segfaults the process. Loading it first is safe.
        if importlib.util.find_spec("triton") is not None:
            try:
                import triton  # noqa: F401
            except Exception:
                pass

        try:
            _CONTEXT = moderngl.create_standalone_context(backend="egl")
        except Exception as err:  # no EGL: try the platform default (GLX / CGL / WGL)
            try:
                _CONTEXT = moderngl.create_standalone_context()
            except Exception:
                raise RuntimeError(f"cannot create an OpenGL context (EGL: {err}); install Mesa EGL (libegl1 libgl1-mesa-dri)") from None
    return _CONTEXT


def projection_from_K(K: np.ndarray, width: int, height: int, near: float = 0.01, far: float = 100.0) -> np.ndarray:
    """OpenGL projection [4, 4] equivalent to pinhole ``K`` for a ``width`` x ``height`` image.

    NDC y = +1 is the top image row (v = 0); the read-back image is flipped accordingly.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array([
        [2 * fx / width, 0.0, 1.0 - 2 * cx / width, 0.0],
        [0.0, 2 * fy / height, 2 * cy / height - 1.0, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])


def expand_items(items: Sequence[DrawItem], center: np.ndarray, scale: float) -> Tuple[np.ndarray, List[Tuple[int, int, DrawItem]]]:
    """Triangle soup of all items: vertices [3F, 12] float32 (pos, normal, colour, uv), normalised
    into the unit box, and ``(first, count, item)`` ranges. Items without normals get face normals."""
    chunks, ranges, first = [], [], 0
    for item in items:
        if len(item.indices) == 0:
            continue
        tri = item.indices.reshape(-1)
        pos = (item.positions[tri] - center) * scale
        if item.has_normals:
            nrm = item.normals[tri]
        else:
            p = pos.reshape(-1, 3, 3)
            face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
            face /= np.maximum(np.linalg.norm(face, axis=1, keepdims=True), 1e-20)
            nrm = np.repeat(face, 3, axis=0)
        chunk = np.concatenate([pos, nrm, item.colors[tri], item.texcoords[tri]], axis=1).astype(np.float32)
        chunks.append(chunk)
        ranges.append((first, len(chunk), item))
        first += len(chunk)
    data = np.concatenate(chunks) if chunks else np.zeros((0, 12), np.float32)
    return data, ranges


class FastRenderer:
    """Renders posed draw items to RGBA uint8 images. Reuses the process-wide GL context."""

    def __init__(self, width: int, height: int, msaa: int = 4, rig: LightRig = DEFAULT_RIG, near: float = 0.01, far: float = 100.0):
        import moderngl

        self.ctx = gl_context()
        self.width, self.height, self.near, self.far = width, height, near, far
        samples = min(msaa, self.ctx.max_samples) if msaa and msaa > 1 else 0
        self.prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        size = (width, height)
        self.fbo = self.ctx.framebuffer(self.ctx.renderbuffer(size, 4, samples=samples), self.ctx.depth_renderbuffer(size, samples=samples))
        self.resolve = self.ctx.framebuffer(self.ctx.renderbuffer(size, 4)) if samples else self.fbo
        dirs, ints = rig.arrays()
        self.prog["light_dir"].write(dirs.tobytes())
        self.prog["light_int"].write(ints.tobytes())
        self.prog["ambient"].value = float(rig.ambient)
        self._textures: Dict[int, "moderngl.Texture"] = {}
        self._vbo = None
        self._moderngl = moderngl

    def _texture(self, material) -> "object":
        key = id(material.texture)
        tex = self._textures.get(key)
        if tex is None:
            mgl = self._moderngl
            img = np.ascontiguousarray(material.texture)
            tex = self.ctx.texture((img.shape[1], img.shape[0]), 4, img.tobytes())
            mipmap = material.min_filter in (9984, 9985, 9986, 9987)
            if mipmap:
                tex.build_mipmaps()
            min_f = material.min_filter if mipmap else (mgl.NEAREST if material.min_filter == 9728 else mgl.LINEAR)
            mag_f = mgl.NEAREST if material.mag_filter == 9728 else mgl.LINEAR
            tex.filter = (min_f, mag_f)
            tex.repeat_x = material.wrap_s != 33071
            tex.repeat_y = material.wrap_t != 33071
            self._textures[key] = tex
        return tex

    def release(self) -> None:
        """Free GPU objects (the context stays alive for the next renderer)."""
        for tex in self._textures.values():
            tex.release()
        self._textures.clear()
        for obj in (self._vbo, self.fbo, self.resolve if self.resolve is not self.fbo else None, self.prog):
            if obj is not None:
                obj.release()
        self._vbo = None

    def render(self, items: Sequence[DrawItem], c2w: np.ndarray, K: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
        """One frame [H, W, 4] uint8 (straight alpha). Geometry is ``(p - center) * scale``."""
        ctx, mgl = self.ctx, self._moderngl
        data, ranges = expand_items(items, center, scale)
        view = np.linalg.inv(opencv_to_opengl(c2w))
        mvp = projection_from_K(K, self.width, self.height, self.near, self.far) @ view
        self.prog["mvp"].write(mvp.T.astype(np.float32).tobytes())  # GL expects column-major
        self.prog["cam_pos"].value = tuple(float(v) for v in c2w[:3, 3])
        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(mgl.DEPTH_TEST | mgl.BLEND)
        ctx.blend_func = mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA  # the shader outputs premultiplied colour
        if len(data):
            if self._vbo is None or self._vbo.size < data.nbytes:
                if self._vbo is not None:
                    self._vbo.release()
                self._vbo = ctx.buffer(reserve=max(data.nbytes, 1 << 16))
            self._vbo.write(data.tobytes())
            vao = ctx.vertex_array(self.prog, [(self._vbo, "3f 3f 4f 2f", "in_pos", "in_normal", "in_color", "in_uv")])
            blended = [r for r in ranges if r[2].material.alpha_mode == "BLEND"]
            for first, count, item in [r for r in ranges if r[2].material.alpha_mode != "BLEND"] + blended:
                m = item.material
                ctx.depth_mask = m.alpha_mode != "BLEND"
                self.prog["base_color"].value = tuple(float(v) for v in np.resize(m.base_color, 4))
                self.prog["alpha_mode"].value = _ALPHA_MODES.get(m.alpha_mode, 0)
                self.prog["alpha_cutoff"].value = float(m.alpha_cutoff)
                self.prog["has_tex"].value = m.texture is not None
                if m.texture is not None:
                    self._texture(m).use(0)
                    self.prog["tex"].value = 0
                vao.render(mgl.TRIANGLES, vertices=count, first=first)
            ctx.depth_mask = True
            vao.release()
        if self.resolve is not self.fbo:
            ctx.copy_framebuffer(self.resolve, self.fbo)
        raw = np.frombuffer(self.resolve.read(components=4, alignment=1), dtype=np.uint8)
        out = raw.reshape(self.height, self.width, 4)[::-1].copy()
        alpha = out[..., 3]
        edge = (alpha > 0) & (alpha < 255)  # premultiplied -> straight alpha where coverage is partial
        if edge.any():
            a = alpha[edge].astype(np.float32)[:, None]
            out[edge, :3] = np.clip(np.rint(out[edge, :3].astype(np.float32) * 255.0 / a), 0, 255).astype(np.uint8)
        return out
