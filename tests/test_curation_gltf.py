"""glTF evaluator: samplers, hierarchy, skinning, morph targets, materials, buffers."""

import base64
import io
import json
import struct

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from diffusion4d.data_curation.gltf import AssetError, Sampler, hermite, load_scene, skin_vertices, skin_vertices_reference, slerp
from diffusion4d.data_curation.gltf.craft import GltfCraft, cube
from diffusion4d.cameras import GLTF_TO_WORLD


def _world(p):
    return (GLTF_TO_WORLD[:3, :3] @ np.asarray(p, dtype=float).T).T


def test_slerp_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = Rotation.random(2, random_state=rng.integers(1 << 30)).as_quat()  # xyzw
        t = float(rng.uniform())
        ref = Slerp([0, 1], Rotation.from_quat(q))([t]).as_quat()[0]
        ours = slerp(q[0], q[1], t)
        assert min(np.abs(ours - ref).max(), np.abs(ours + ref).max()) < 1e-9


def test_linear_step_cubic_samplers():
    times = np.array([0.0, 1.0, 3.0])
    lin = Sampler.from_accessors(times, np.array([[0, 0, 0], [2, 0, 0], [2, 4, 0]], float), "LINEAR", 3, "t")
    assert np.allclose(lin.evaluate(0.5), [1, 0, 0]) and np.allclose(lin.evaluate(2.0), [2, 2, 0])
    assert np.allclose(lin.evaluate(-1.0), [0, 0, 0]) and np.allclose(lin.evaluate(9.0), [2, 4, 0])  # clamped
    step = Sampler.from_accessors(times, np.array([[0.0], [5.0], [7.0]]), "STEP", 1, "t")
    assert step.evaluate(0.99)[0] == 0.0 and step.evaluate(1.0)[0] == 5.0 and step.evaluate(2.9)[0] == 5.0
    # CUBICSPLINE: (in-tangent, value, out-tangent) per key; at keys the value itself
    rng = np.random.default_rng(1)
    out = rng.normal(size=(9, 3))
    cub = Sampler.from_accessors(times, out, "CUBICSPLINE", 3, "t")
    for k, t in enumerate(times):
        assert np.allclose(cub.evaluate(t), out[3 * k + 1])
    # midpoint by hand: s = 0.5 on [1, 3] (dt = 2): 0.5 v1 + 0.125*dt*b1 + 0.5 v2 - 0.125*dt*a2
    v1, b1, a2, v2 = out[4], out[5], out[6], out[7]
    assert np.allclose(cub.evaluate(2.0), 0.5 * v1 + 0.25 * b1 + 0.5 * v2 - 0.25 * a2)
    assert np.allclose(hermite(v1, b1, v2, a2, 0.5, 2.0), cub.evaluate(2.0))


def test_sampler_rejects_bad_keys():
    with pytest.raises(AssetError, match="corrupt"):
        Sampler.from_accessors(np.array([0.0, 1.0]), np.zeros((3, 3)), "LINEAR", 3, "t")
    with pytest.raises(AssetError, match="non_finite"):
        Sampler.from_accessors(np.array([0.0, 1.0]), np.array([[0, 0, 0], [np.nan, 0, 0]]), "LINEAR", 3, "t")


def test_hierarchy_and_rotation_animation(tmp_path):
    c = GltfCraft()
    p, n, i = cube(0.2)
    mesh = c.add_mesh(p, i, normals=n)
    parent = c.add_node(translation=[1.0, 0.0, 0.0])
    child = c.add_node(mesh=mesh, parent=parent, translation=[0.0, 0.0, 1.0])
    q90 = Rotation.from_euler("y", 90, degrees=True).as_quat()
    c.add_animation([(parent, "rotation", [0.0, 2.0], np.stack([[0, 0, 0, 1], q90]), "LINEAR")])
    path = tmp_path / "h.glb"
    path.write_bytes(c.to_glb())
    scene = load_scene(path)
    assert scene.duration == pytest.approx(2.0)
    centre0 = scene.evaluate(0.0)[0].positions.mean(0)
    assert np.allclose(centre0, _world([1, 0, 1]), atol=1e-6)
    # at t=2 the parent rotated 90 deg about +Y: child offset (0, 0, 1) -> (1, 0, 0)
    centre2 = scene.evaluate(2.0)[0].positions.mean(0)
    assert np.allclose(centre2, _world([2, 0, 0]), atol=1e-6)
    # halfway: slerp 45 deg
    c45 = scene.evaluate(1.0)[0].positions.mean(0)
    s = np.sqrt(0.5)
    assert np.allclose(c45, _world([1 + s, 0, s]), atol=1e-6)


def _skinned_asset(tmp_path, n_influences=8):
    rng = np.random.default_rng(3)
    c = GltfCraft()
    v = 30
    pos = rng.uniform(-1, 1, size=(v, 3))
    joints_nodes = []
    root = c.add_node(translation=[0.1, 0.2, 0.3])
    for j in range(n_influences):
        joints_nodes.append(c.add_node(parent=root if j == 0 else joints_nodes[-1], translation=rng.normal(size=3) * 0.3,
                                       rotation=Rotation.random(random_state=j).as_quat()))
    ibm = np.tile(np.eye(4), (n_influences, 1, 1))
    ibm[:, :3, 3] = rng.normal(size=(n_influences, 3)) * 0.2
    skin = c.add_skin(joints_nodes, ibm)
    joints = np.stack([rng.permutation(n_influences) for _ in range(v)])
    weights = rng.uniform(size=(v, n_influences))
    weights /= weights.sum(1, keepdims=True)
    mesh = c.add_mesh(pos, np.arange(v).reshape(-1, 3), normals=rng.normal(size=(v, 3)), joints=joints, weights=weights)
    c.add_node(mesh=mesh, skin=skin, translation=[5, 5, 5])  # the mesh node's transform must cancel out
    q = Rotation.from_euler("z", 60, degrees=True).as_quat()
    c.add_animation([(joints_nodes[2], "rotation", [0, 1], np.stack([[0, 0, 0, 1], q]), "LINEAR")])
    path = tmp_path / "skin.glb"
    path.write_bytes(c.to_glb())
    return path, pos, joints, weights


def test_skinning_vectorised_equals_loop_and_spec(tmp_path):
    path, pos, joints, weights = _skinned_asset(tmp_path)
    scene = load_scene(path)
    fast = scene.evaluate(0.7)[0]
    slow = scene.evaluate(0.7, skinning="reference")[0]
    assert np.allclose(fast.positions, slow.positions, atol=1e-9)
    assert np.allclose(fast.normals, slow.normals, atol=1e-9)
    # spec formula by hand for vertex 0: sum_j w_j global(joint_j) @ IBM_j @ p (mesh node cancels)
    globals_, _ = scene.global_matrices(0.7)
    skin = scene.skins[0]
    m = sum(w * globals_[skin.joints[j]] @ skin.inverse_bind[j] for j, w in zip(joints[0], weights[0]))
    expected = GLTF_TO_WORLD @ m @ np.append(pos[0], 1.0)
    assert np.allclose(fast.positions[0], expected[:3], atol=1e-5)
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(5, 4, 4))
    mats[:, 3] = [0, 0, 0, 1]
    j = rng.integers(0, 5, size=(7, 4))
    w = rng.uniform(size=(7, 4))
    p, n = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    a, b = skin_vertices(p, n, j, w, mats), skin_vertices_reference(p, n, j, w, mats)
    assert np.allclose(a[0], b[0]) and np.allclose(a[1], b[1])


def test_morph_targets_animated_weights(tmp_path):
    c = GltfCraft()
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    t0 = np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], float)
    t1 = np.array([[0, 0, 0], [0, 0, 2], [0, 0, 0]], float)
    mesh = c.add_mesh(pos, [[0, 1, 2]], targets=[t0, t1], target_weights=[0.5, 0.0])
    node = c.add_node(mesh=mesh)
    path = tmp_path / "static_morph.glb"
    path.write_bytes(c.to_glb())
    posed = load_scene(path).evaluate(0.0)[0].positions  # default mesh weights [0.5, 0]
    assert np.allclose(posed, _world(pos + 0.5 * t0))
    c.add_animation([(node, "weights", [0.0, 1.0], np.array([[0.0, 0.0], [1.0, 0.5]]).reshape(-1, 1), "LINEAR")])
    path.write_bytes(c.to_glb())
    scene = load_scene(path)
    assert np.allclose(scene.evaluate(0.5)[0].positions, _world(pos + 0.5 * t0 + 0.25 * t1))


def _png(rgba):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgba, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_materials_texture_vertex_colours(tmp_path):
    c = GltfCraft()
    tex = np.zeros((2, 2, 4), np.uint8)
    tex[..., 0], tex[..., 3] = 200, 255
    mat = c.add_material((0.5, 1.0, 1.0, 0.8), texture_png=_png(tex), alpha_mode="BLEND")
    mesh = c.add_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], uvs=[[0, 0], [1, 0], [0, 1]],
                      colors=[[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], material=mat)
    c.add_node(mesh=mesh)
    path = tmp_path / "m.glb"
    path.write_bytes(c.to_glb())
    item = load_scene(path).evaluate(0.0)[0]
    m = item.material
    assert m.alpha_mode == "BLEND" and np.allclose(m.base_color, [0.5, 1, 1, 0.8])
    assert m.texture.shape == (2, 2, 4) and m.texture[0, 0, 0] == 200
    assert np.allclose(item.colors[1], [0, 1, 0, 1]) and np.allclose(item.texcoords[2], [0, 1])


def test_external_and_data_uri_buffers_match_glb(tmp_path):
    c = GltfCraft()
    p, n, i = cube(1.0)
    c.add_node(mesh=c.add_mesh(p, i, normals=n))
    (tmp_path / "a.glb").write_bytes(c.to_glb())
    c.write_gltf(tmp_path / "b.gltf")
    c.write_gltf(tmp_path / "c.gltf", bin_name="data")
    ref = load_scene(tmp_path / "a.glb").evaluate(0.0)[0].positions
    for name in ("b.gltf", "c.gltf"):
        assert np.allclose(load_scene(tmp_path / name).evaluate(0.0)[0].positions, ref)
    (tmp_path / "b.bin").unlink()
    with pytest.raises(AssetError, match="missing_buffer"):
        load_scene(tmp_path / "b.gltf")


def test_animation_selection(tmp_path):
    c = GltfCraft()
    node = c.add_node(mesh=c.add_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]))
    c.add_animation([(node, "translation", [0, 1], [[0, 0, 0], [1, 0, 0]], "LINEAR")], name="short")
    c.add_animation([(node, "translation", [0, 3], [[0, 0, 0], [0, 1, 0]], "LINEAR")], name="long")
    path = tmp_path / "two.glb"
    path.write_bytes(c.to_glb())
    assert load_scene(path).animation.name == "long"
    assert load_scene(path, "first").animation.name == "short"
    assert load_scene(path, "short").duration == pytest.approx(1.0)
    assert load_scene(path, 1).animation.name == "long"
    with pytest.raises(AssetError, match="no_animation"):
        load_scene(path, "missing")


def test_truncated_and_corrupt_glb(tmp_path):
    c = GltfCraft()
    c.add_node(mesh=c.add_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]))
    data = c.to_glb()
    (tmp_path / "t.glb").write_bytes(data[: len(data) // 2])
    with pytest.raises(AssetError, match="truncated"):
        load_scene(tmp_path / "t.glb")
    json_len = struct.unpack_from("<I", data, 12)[0]
    bad = data[:20] + b"{" * json_len + data[20 + json_len:]
    (tmp_path / "c.glb").write_bytes(bad)
    with pytest.raises(AssetError, match="corrupt"):
        load_scene(tmp_path / "c.glb")
