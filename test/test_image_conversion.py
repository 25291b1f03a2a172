"""Image / CompressedImage -> RGB for every supported encoding, and clear errors for bad input.

asymtrack_ros.images is ROS-free and duck-typed: most tests feed it plain objects with the
fields of sensor_msgs/Image and CompressedImage; the last ones check real ROS messages and cv_bridge.
"""

from __future__ import annotations

import array
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, List

import cv2
import numpy as np
import pytest

from asymtrack_ros import images as ic
from asymtrack_ros.images import ImageConversionError, compressed_to_rgb, image_to_rgb

H, W = 6, 8


@pytest.fixture(autouse=True)
def numpy_path(monkeypatch):
    """Test the numpy path even where cv_bridge is installed (one test checks the bridge)."""
    monkeypatch.setattr(ic, "_bridge", None)


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def make_image(pixels: np.ndarray, encoding: str, is_bigendian: bool = False) -> SimpleNamespace:
    """The fields of a sensor_msgs/Image holding ``pixels`` as they are (no conversion)."""
    pixels = np.ascontiguousarray(pixels)
    return SimpleNamespace(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                           is_bigendian=int(is_bigendian), step=pixels.strides[0], data=pixels.tobytes())


def compressed(fmt: str, data: Any = b"") -> SimpleNamespace:
    """The fields of a sensor_msgs/CompressedImage."""
    return SimpleNamespace(format=fmt, data=data)


def convert(pixels, encoding, **kwargs):
    return image_to_rgb(make_image(pixels, encoding, **kwargs))


def test_rgb_family(rgb):
    alpha = np.full((H, W, 1), 77, np.uint8)
    np.testing.assert_array_equal(convert(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(convert(rgb[:, :, ::-1], "bgr8"), rgb)
    np.testing.assert_array_equal(convert(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    np.testing.assert_array_equal(convert(np.concatenate([rgb[:, :, ::-1], alpha], 2), "bgra8"), rgb)
    for encoding in ("bgr8", "rgba8", "bgra8"):  # same as OpenCV's own conversions
        pixels = {"bgr8": rgb, "rgba8": np.concatenate([rgb, alpha], 2),
                  "bgra8": np.concatenate([rgb, alpha], 2)}[encoding]
        code = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB}[encoding]
        np.testing.assert_array_equal(convert(pixels, encoding), cv2.cvtColor(pixels, code))


def test_result_is_contiguous_uint8(rgb):
    for pixels, encoding in ((rgb, "rgb8"), (rgb, "bgr8"), (rgb[:, :, 0], "mono8")):
        out = convert(pixels, encoding)
        assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous


def test_mono8(rgb):
    grey = rgb[:, :, 1]
    np.testing.assert_array_equal(convert(grey, "mono8"), np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_honours_the_endianness_flag(big_endian):
    values = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 1000
    pixels = values.astype(">u2" if big_endian else "<u2")
    out = convert(pixels, "mono16", is_bigendian=big_endian)
    np.testing.assert_array_equal(out[:, :, 0], (values >> 8).astype(np.uint8))


def _bt601(y, u, v):
    """ITU-R BT.601 limited range YUV -> RGB, the conversion OpenCV and cv_bridge use."""
    c, d, e = y.astype(np.float64) - 16, u.astype(np.float64) - 128, v.astype(np.float64) - 128
    r = 1.164 * c + 1.596 * e
    g = 1.164 * c - 0.391 * d - 0.813 * e
    b = 1.164 * c + 2.018 * d
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422(encoding):
    rng = np.random.default_rng(1)
    y = rng.integers(16, 236, (H, W), dtype=np.uint8)
    u = rng.integers(16, 241, (H, W // 2), dtype=np.uint8)
    v = rng.integers(16, 241, (H, W // 2), dtype=np.uint8)
    packed = np.empty((H, W, 2), np.uint8)
    uv = np.empty((H, W), np.uint8)
    uv[:, 0::2], uv[:, 1::2] = u, v
    if encoding in ("yuv422", "uyvy"):  # U0 Y0 V0 Y1
        packed[:, :, 0], packed[:, :, 1] = uv, y
    else:  # Y0 U0 Y1 V0
        packed[:, :, 0], packed[:, :, 1] = y, uv
    out = convert(packed, encoding)
    expected = _bt601(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2
    code = cv2.COLOR_YUV2RGB_UYVY if encoding in ("yuv422", "uyvy") else cv2.COLOR_YUV2RGB_YUYV
    np.testing.assert_array_equal(out, cv2.cvtColor(packed, code))


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns(pattern):
    colour = np.array([200, 100, 30], np.uint8)  # R, G, B
    index = {"r": 0, "g": 1, "b": 2}
    mosaic = np.empty((H, W), np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            mosaic[dy::2, dx::2] = colour[index[pattern[2 * dy + dx]]]
    out = convert(mosaic, f"bayer_{pattern}8")
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(colour, (H - 4, W - 4, 3)))


def test_row_padding_is_skipped(rgb):
    padded = np.zeros((H, W * 3 + 5), np.uint8)
    padded[:, : W * 3] = rgb.reshape(H, -1)
    msg = make_image(rgb, "rgb8")
    msg.step = W * 3 + 5
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "rgb16", "jpeg", ""])
def test_unsupported_encodings(encoding):
    msg = make_image(np.zeros((H, W, 2), np.uint8), encoding)
    with pytest.raises(ImageConversionError, match="unsupported image encoding"):
        image_to_rgb(msg)


def test_step_and_size_mismatch(rgb):
    msg = make_image(rgb, "rgb8")
    msg.step = W * 3 - 1
    with pytest.raises(ImageConversionError, match="step .* smaller"):
        image_to_rgb(msg)
    msg = make_image(rgb, "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ImageConversionError, match="does not match step x height"):
        image_to_rgb(msg)
    msg = make_image(rgb, "rgb8")
    msg.height = H + 1
    with pytest.raises(ImageConversionError, match="does not match"):
        image_to_rgb(msg)


def test_empty_and_odd_yuv():
    with pytest.raises(ImageConversionError, match="empty image"):
        image_to_rgb(make_image(np.zeros((0, 0, 3), np.uint8), "rgb8"))
    msg = make_image(np.zeros((H, W - 1, 2), np.uint8), "yuyv")
    with pytest.raises(ImageConversionError, match="even width"):
        image_to_rgb(msg)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed(ext):
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 2], -1).astype(np.uint8)  # smooth: JPEG keeps it
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = compressed(ext[1:], encoded.tobytes())
    out = compressed_to_rgb(msg)
    assert out.shape == rgb.shape
    tolerance = 0 if ext == ".png" else 8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() <= tolerance
    np.testing.assert_array_equal(out, compressed_to_rgb(msg, use_cv_bridge=False))


def test_compressed_errors():
    with pytest.raises(ImageConversionError, match="empty"):
        compressed_to_rgb(compressed("jpeg"))
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb(compressed("jpeg", b"not a jpeg"))
    with pytest.raises(ImageConversionError, match="depth"):
        compressed_to_rgb(compressed("16UC1; compressedDepth", b"x"))


@pytest.mark.parametrize("alias, canonical", [("uyvy", "yuv422"), ("YUYV", "yuv422_yuy2"), ("RGB8", "rgb8"),
                                              (" Bgr8 ", "bgr8"), ("Bayer_RGGB8", "bayer_rggb8")])
def test_encodings_are_case_insensitive_with_ros_aliases(rgb, alias, canonical):
    assert ic.canonical_encoding(alias) == canonical
    channels = {"bayer_rggb8": 1, "yuv422": 2, "yuv422_yuy2": 2}.get(canonical, 3)
    pixels = np.ascontiguousarray(rgb[:, :, 0] if channels == 1 else rgb[:, :, :channels])
    np.testing.assert_array_equal(convert(pixels, alias), convert(pixels, canonical))


def _encoded(ext: str, width: int = 37, height: int = 23) -> bytes:
    ok, data = cv2.imencode(ext, np.full((height, width, 3), 90, np.uint8))
    assert ok
    return data.tobytes()


def _claiming(ext: str, width: int, height: int) -> bytes:
    """A real small JPEG or PNG whose header claims ``width`` x ``height``."""
    raw = bytearray(_encoded(ext))
    if ext == ".png":
        raw[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    else:
        sof = raw.index(b"\xff\xc0")
        raw[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)


def test_compressed_size_is_read_from_the_header():
    assert ic.compressed_size(_encoded(".jpg")) == (37, 23)
    assert ic.compressed_size(_encoded(".png")) == (37, 23)
    progressive = cv2.imencode(".jpg", np.zeros((9, 70, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    assert ic.compressed_size(progressive.tobytes()) == (70, 9)
    assert ic.compressed_size(_claiming(".jpg", 60000, 60000)) == (60000, 60000)
    for other in (b"", b"not an image", _encoded(".jpg")[:20], _encoded(".bmp")):
        assert ic.compressed_size(other) is None


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_images_over_the_limit_are_refused_before_decoding(ext):
    msg = compressed(ext[1:], _claiming(ext, 30000, 30000))
    with pytest.raises(ImageConversionError, match=r"30000x30000 .* exceeds max_image_pixels"):
        compressed_to_rgb(msg, max_pixels=16_777_216)
    fine = compressed(ext[1:], _encoded(ext))
    assert compressed_to_rgb(fine, max_pixels=37 * 23).shape == (23, 37, 3)
    with pytest.raises(ImageConversionError, match="exceeds"):
        compressed_to_rgb(fine, max_pixels=37 * 23 - 1)


def test_an_undecodable_huge_jpeg_is_a_conversion_error_not_cv2_error():
    msg = compressed("jpeg", _claiming(".jpg", 60000, 60000))
    with pytest.raises(ImageConversionError, match="cannot decode"):  # OpenCV's own limit, no max_pixels
        compressed_to_rgb(msg)


def test_formats_without_a_parsed_header_are_checked_once_decoded():
    msg = compressed("bmp", _encoded(".bmp"))
    with pytest.raises(ImageConversionError, match="decoded image 37x23"):
        compressed_to_rgb(msg, max_pixels=100)


def test_raw_images_over_the_limit_are_refused(rgb):
    msg = make_image(rgb, "rgb8")
    with pytest.raises(ImageConversionError, match=f"{W}x{H} .* exceeds max_image_pixels"):
        image_to_rgb(msg, max_pixels=W * H - 1)
    np.testing.assert_array_equal(image_to_rgb(msg, max_pixels=W * H), rgb)


def test_unsupported_encodings_are_refused_before_any_conversion():
    with pytest.raises(ImageConversionError, match="unsupported"):  # validated before the bridge
        image_to_rgb(make_image(np.zeros((H, W), np.uint16), "16UC1"))


@pytest.mark.parametrize("container", [bytes, bytearray, lambda b: array.array("B", b),
                                       lambda b: np.frombuffer(b, np.uint8), memoryview],
                         ids=["bytes", "bytearray", "array", "numpy", "memoryview"])
def test_payload_containers_of_rclpy_rosbags_and_bytes_convert_alike(rgb, container):
    msg = make_image(rgb[:, :, ::-1], "bgr8")
    msg.data = container(msg.data)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    png = compressed("png", container(_encoded(".png")))
    np.testing.assert_array_equal(compressed_to_rgb(png), np.full((23, 37, 3), 90, np.uint8))


def _spellings(rgb: np.ndarray) -> List[tuple]:
    """(encoding, pixels): ROS spellings, other letter cases and the YUV aliases cv_bridge lacks."""
    packed = np.ascontiguousarray(rgb[:, :, :2])
    return [("rgb8", rgb), ("bgr8", rgb[:, :, ::-1]), ("mono8", rgb[:, :, 0]), ("RGB8", rgb),
            ("Bgr8", rgb[:, :, ::-1]), ("uyvy", packed), ("yuyv", packed), ("yuv422", packed),
            ("YUV422_YUY2", packed)]


class RecordingBridge:
    """Stands in for CvBridge: records what reaches it, converts with ``inner`` (else the numpy path)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.calls: List[str] = []

    def imgmsg_to_cv2(self, msg: Any, desired_encoding: str) -> np.ndarray:
        self.calls.append(msg.encoding)
        if self.inner is not None:
            return self.inner.imgmsg_to_cv2(msg, desired_encoding=desired_encoding)
        return image_to_rgb(msg, use_cv_bridge=False)

    def compressed_imgmsg_to_cv2(self, msg: Any, desired_encoding: str) -> np.ndarray:
        self.calls.append(msg.format)
        if self.inner is not None:
            return self.inner.compressed_imgmsg_to_cv2(msg, desired_encoding=desired_encoding)
        return compressed_to_rgb(msg, use_cv_bridge=False)


def test_only_ros_spelled_encodings_reach_cv_bridge_and_only_when_allowed(rgb, monkeypatch):
    bridge = RecordingBridge()
    monkeypatch.setattr(ic, "_bridge", bridge)
    png = compressed("png", _encoded(".png"))
    for encoding, pixels in _spellings(rgb):
        image_to_rgb(make_image(pixels, encoding), use_cv_bridge=False)
    compressed_to_rgb(png, use_cv_bridge=False)
    assert bridge.calls == []
    for encoding, pixels in _spellings(rgb):
        image_to_rgb(make_image(pixels, encoding))
    compressed_to_rgb(png)
    # cv_bridge is case-sensitive and knows neither uyvy nor yuyv; YUV 4:2:2 is converted here
    assert bridge.calls == ["rgb8", "bgr8", "mono8", "png"]


class FailingBridge:
    def imgmsg_to_cv2(self, msg: Any, desired_encoding: str) -> np.ndarray:
        raise RuntimeError("bridge failure")

    compressed_imgmsg_to_cv2 = imgmsg_to_cv2


def test_cv_bridge_failures_are_conversion_errors_and_validation_comes_first(rgb, monkeypatch):
    monkeypatch.setattr(ic, "_bridge", FailingBridge())
    with pytest.raises(ImageConversionError, match="cv_bridge cannot convert rgb8: bridge failure"):
        image_to_rgb(make_image(rgb, "rgb8"))
    with pytest.raises(ImageConversionError, match="cv_bridge cannot decode 'png': bridge failure"):
        compressed_to_rgb(compressed("png", _encoded(".png")))
    with pytest.raises(ImageConversionError, match="unsupported image encoding"):
        image_to_rgb(make_image(np.zeros((H, W), np.uint16), "16UC1"))
    msg = make_image(rgb, "rgb8")
    msg.step = W * 3 - 1
    with pytest.raises(ImageConversionError, match="step .* smaller"):
        image_to_rgb(msg)
    with pytest.raises(ImageConversionError, match="exceeds max_image_pixels"):
        image_to_rgb(make_image(rgb, "rgb8"), max_pixels=W * H - 1)


def test_without_cv_bridge_the_numpy_path_converts(rgb, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # `import cv_bridge` raises ImportError
    monkeypatch.setattr(ic, "_bridge", ic._UNSET)
    np.testing.assert_array_equal(image_to_rgb(make_image(rgb[:, :, ::-1], "bgr8")), rgb)
    np.testing.assert_array_equal(compressed_to_rgb(compressed("png", _encoded(".png"))),
                                  np.full((23, 37, 3), 90, np.uint8))


def test_conversion_and_bag_encodings_import_nothing_from_ros():
    code = ("import sys; import asymtrack_ros.images, asymtrack_ros.stamps, asymtrack_ros.bag.encodings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'std_msgs', 'cv_bridge') or m.startswith('asymtrack_ros.ros')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _ros_messages() -> Any:
    pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2) is not installed")
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built (scripts/setup.sh)")
    pytest.importorskip("asymtrack_msgs.msg", reason="asymtrack_msgs is not built (scripts/setup.sh)")
    from asymtrack_ros.ros import messages

    return messages


def test_make_image_packs_a_sensor_msgs_image_that_converts_like_its_fields(rgb):
    messages = _ros_messages()
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    mono16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 1000).astype(">u2")
    for pixels, encoding, big in ((rgb, "rgb8", False), (rgb[:, :, 0], "mono8", False),
                                  (rgb[:, :, ::-1], "bgr8", False), (mono16, "mono16", True)):
        msg = messages.make_image(pixels, encoding, Header(frame_id="cam"), is_bigendian=big)
        assert isinstance(msg, Image) and msg.header.frame_id == "cam" and msg.encoding == encoding
        assert (msg.height, msg.width, msg.step, msg.is_bigendian) == (H, W, pixels[0].nbytes, int(big))
        np.testing.assert_array_equal(image_to_rgb(msg), convert(pixels, encoding, is_bigendian=big))


def test_real_cv_bridge_agrees_with_the_numpy_path(rgb, monkeypatch):
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge is not installed (no PyPI wheel)")
    messages = _ros_messages()
    from sensor_msgs.msg import CompressedImage

    monkeypatch.setattr(ic, "_bridge", ic._UNSET)  # the installed bridge, not the numpy_path fixture's None
    real = ic._cv_bridge()
    assert isinstance(real, cv_bridge.CvBridge)
    bridge = RecordingBridge(real)
    monkeypatch.setattr(ic, "_bridge", bridge)
    for encoding, pixels in _spellings(rgb):
        msg = messages.make_image(pixels, encoding)
        np.testing.assert_array_equal(image_to_rgb(msg), image_to_rgb(msg, use_cv_bridge=False))
    png = CompressedImage(format="png", data=array.array("B", _encoded(".png")))
    np.testing.assert_array_equal(compressed_to_rgb(png), compressed_to_rgb(png, use_cv_bridge=False))
    assert bridge.calls == ["rgb8", "bgr8", "mono8", "png"]
