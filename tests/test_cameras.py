import math

import numpy as np
import pytest

from diffusion4d import cameras as C


def test_opencv_opengl_blender_round_trips():
    c2w = C.look_at(C.orbit_position(37.0, 21.0, 2.5))
    assert np.allclose(C.opengl_to_opencv(C.opencv_to_opengl(c2w)), c2w)
    assert np.allclose(C.blender_to_opencv(C.opencv_to_blender(c2w)), c2w)
    gl = C.opencv_to_opengl(c2w)
    # OpenGL camera looks down its -z axis: towards the origin.
    view_dir = -gl[:3, 2]
    assert np.allclose(view_dir, -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3]))
    # and its +y axis points "up" on screen (positive world z component for elevation 21)
    assert gl[2, 1] > 0


def test_look_at_is_rotation_and_up_is_image_up():
    c2w = C.look_at(C.orbit_position(0.0, 0.0, 2.0))
    R = c2w[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3))
    assert np.isclose(np.linalg.det(R), 1.0)
    # world +Z (up) maps to image up, i.e. camera -y
    assert np.allclose(R[:, 1], [0, 0, -1])


def test_gltf_to_world_maps_y_up_to_z_up_and_front_to_minus_y():
    up = C.GLTF_TO_WORLD[:3, :3] @ np.array([0, 1.0, 0])
    front = C.GLTF_TO_WORLD[:3, :3] @ np.array([0, 0, 1.0])
    assert np.allclose(up, [0, 0, 1]) and np.allclose(front, [0, -1, 0])


def test_intrinsics_fov_spans_larger_side():
    K = C.intrinsics_from_fov(90.0, 200, 100)
    assert np.isclose(K[0, 0], 100.0) and np.isclose(K[1, 1], 100.0)
    assert np.allclose(K[:2, 2], [100.0, 50.0])
    with pytest.raises(ValueError):
        C.intrinsics_from_fov(0.0, 10, 10)


@pytest.mark.parametrize("mode", C.RENDER_MODES)
def test_origin_projects_to_image_centre_in_every_mode(mode):
    traj = C.orbit_trajectory(mode, 8, start_azimuth=30.0, elevation=15.0, radius=2.0, width=128, height=96)
    for f in traj.frames:
        u, v, z = C.project(np.zeros((1, 3)), f.c2w, f.K)[0]
        assert np.isclose(u, 64.0) and np.isclose(v, 48.0) and np.isclose(z, 2.0)


@pytest.mark.parametrize("mode", C.RENDER_MODES)
def test_known_point_projects_to_expected_pixel(mode):
    """A point at world +Z (up) 0.5 above the origin lands straight above the centre by f*0.5/2
    at elevation 0, for every camera of every mode (all cameras look horizontally at the origin)."""
    traj = C.orbit_trajectory(mode, 6, width=256, height=256, radius=2.0, fov_deg=60.0)
    f_px = 128 / math.tan(math.radians(30))
    for f in traj.frames:
        u, v, _ = C.project(np.array([[0, 0, 0.5]]), f.c2w, f.K)[0]
        assert np.isclose(u, 128.0) and np.isclose(v, 128.0 - f_px * 0.25)


def test_front_camera_sees_object_right_side_on_image_right():
    """The camera at azimuth 0 sits on -Y looking at +Y; world +X appears on the image right;
    at azimuth 90 the camera sits on +X and world +Y appears on the image right."""
    front = C.orbit_trajectory("front", 1, width=100, height=100)
    assert np.allclose(front.frames[0].c2w[:3, 3], [0, -2, 0])
    u, _, _ = C.project(np.array([[0.3, 0, 0]]), front.frames[0].c2w, front.frames[0].K)[0]
    assert u > 50
    side = C.orbit_trajectory("front", 1, start_azimuth=90.0, width=100, height=100)
    assert np.allclose(side.frames[0].c2w[:3, 3], [2, 0, 0])
    u, _, _ = C.project(np.array([[0, 0.3, 0]]), side.frames[0].c2w, side.frames[0].K)[0]
    assert u > 50


def test_mode_times_and_azimuths():
    dyn = C.orbit_trajectory("dynamic", 4, start_azimuth=10.0, duration_seconds=2.0)
    assert [f.azimuth for f in dyn.frames] == [10.0, 100.0, 190.0, 280.0]
    assert np.allclose(dyn.times, [0, 1 / 3, 2 / 3, 1])
    assert np.isclose(dyn.frames[-1].time_seconds, 2.0)
    static = C.orbit_trajectory("static", 4, start_azimuth=10.0)
    assert np.allclose(static.times, 0) and np.allclose(static.c2w, dyn.c2w)
    front = C.orbit_trajectory("front", 4, start_azimuth=10.0)
    assert all(f.azimuth == 10.0 for f in front.frames) and np.allclose(front.times, dyn.times)
    four = C.orbit_trajectory("four_view", 3)
    assert len(four) == 12 and [f.index for f in four.frames] == list(range(12))
    assert [f.view for f in four.frames[::3]] == ["front", "right", "back", "left"]
    assert [f.azimuth for f in four.frames[::3]] == [0.0, 90.0, 180.0, 270.0]


def test_trajectory_json_round_trip():
    traj = C.orbit_trajectory("four_view", 2, elevation=20.0, width=64, height=48, duration_seconds=3.0)
    back = C.CameraTrajectory.from_json(traj.to_json())
    assert back.width == 64 and back.height == 48 and back.mode == "four_view"
    assert np.allclose(back.c2w, traj.c2w) and np.allclose(back.K, traj.K)
    assert [f.view for f in back.frames] == [f.view for f in traj.frames]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="valid modes"):
        C.orbit_trajectory("spiral", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        C.orbit_trajectory("dynamic", 0)
