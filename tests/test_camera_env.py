"""The camera-frame env map and the catalog's map frame agree (pure numpy)."""

from __future__ import annotations

import numpy as np

from assets_manifest import envmap, procedural_hdri
from synthgen import camera_env


def _peak(rgb):
    v, u = np.unravel_index(np.argmax(envmap.luminance(rgb)), rgb.shape[:2])
    return (u + 0.5) / rgb.shape[1], (v + 0.5) / rgb.shape[0]


def test_frontal_camera_sees_the_map_turned_by_the_rotation():
    src = procedural_hdri.generate("clear_sky", 3, 256).rgb
    sun_az = procedural_hdri.generate("clear_sky", 3, 256).params["sun_azimuth_deg"]
    for rotation in (0.0, 37.0, 90.0, 200.0):
        cam = camera_env.camera_frame_env(src, camera_env.FRONTAL_CAMERA, rotation, width=256, supersample=1)
        ref = envmap.rotate_azimuth(envmap.front_frame(src), rotation)
        # same map up to resampling: compare where the sun is
        (u1, v1), (u2, v2) = _peak(cam), _peak(ref)
        assert abs((u1 - u2 + 0.5) % 1 - 0.5) < 2 / 256 and abs(v1 - v2) < 2 / 128, rotation
        expected_u = ((sun_az + rotation) / 360.0 + 0.5) % 1.0
        assert abs((u1 - expected_u + 0.5) % 1 - 0.5) < 3 / 256
        assert np.corrcoef(cam.ravel(), ref.ravel())[0, 1] > 0.99


def test_yaw_turns_the_camera_not_the_lights():
    src = procedural_hdri.generate("studio", 1, 256).rgb
    yaw = np.radians(30.0)
    # camera moved 30 degrees around the head (to the subject's left, image right): same world lights
    c, s = np.cos(yaw), np.sin(yaw)
    turned = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ camera_env.FRONTAL_CAMERA
    a = camera_env.camera_frame_env(src, turned, 0.0, 128, 1)
    b = camera_env.camera_frame_env(src, camera_env.FRONTAL_CAMERA, -30.0, 128, 1)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_background_plate_centre_is_the_view_direction():
    src = np.zeros((64, 128, 3), np.float32)
    src[:, :, 0] = np.abs(np.linspace(-1, 1, 128))[None, :]  # red: 0 at the centre column, 1 at the seam
    plate = camera_env.background_plate(src, camera_env.FRONTAL_CAMERA, 0.0, 32, 50.0, 36.0)
    # at rotation 0 the map's centre column is in front of the face, so behind the head is the seam
    assert plate[16, 16, 0] > 0.95
