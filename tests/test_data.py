import subprocess
import time

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

import nvpkit
from nvpkit.data import parse_yuv_name


def ffmpeg_convert(frames: np.ndarray, out, *args: str) -> None:
    """Encode rgb frames with the bundled ffmpeg (test helper)."""
    t, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-i", "-", *args, "-y", str(out)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_sample_clip():
    video = nvpkit.load_video("sample", num_frames=4)
    assert video.frames.shape == (4, 720, 1280, 3) and video.frames.dtype == np.uint8
    assert video.fps == 25 and video.name == "bigbuckbunny"
    assert video.num_pixels == 4 * 720 * 1280


def test_folder_of_frames_in_natural_order(tmp_path, frames):
    for i, frame in enumerate(frames, start=1):
        iio.imwrite(tmp_path / f"f{i}.png", frame)  # f1, f2, ..., f6: lexical order would put f10 before f2
    (tmp_path / "notes.txt").write_text("ignored")
    video = nvpkit.load_video(tmp_path)
    np.testing.assert_array_equal(video.frames, frames)
    assert video.name == tmp_path.name


def test_uvg_layout_and_natural_sort(tmp_path, frames):
    for i in (1, 2, 10):
        iio.imwrite(tmp_path / f"frame{i}.png", np.full((8, 8, 3), i, np.uint8))
    assert nvpkit.load_video(tmp_path).frames[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_jpg_and_grey_frames(tmp_path, frames):
    for i, frame in enumerate(frames[:3]):
        iio.imwrite(tmp_path / f"f{i:05d}.jpg", frame[..., 0])
    video = nvpkit.load_video(tmp_path)
    assert video.frames.shape == (3, 48, 64, 3)
    assert psnr(video.frames[..., 1], frames[:3, ..., 0]) > 35


def test_mp4_round_trip(tmp_path, frames):
    path = nvpkit.write_video(frames, tmp_path / "clip.mp4", fps=30)
    video = nvpkit.load_video(path)
    assert video.frames.shape == frames.shape and video.fps == 30
    assert psnr(video.frames, frames) > 35


def test_y4m(tmp_path, frames):
    ffmpeg_convert(frames, tmp_path / "clip.y4m", "-pix_fmt", "yuv444p")
    assert psnr(nvpkit.load_video(tmp_path / "clip.y4m").frames, frames) > 35


@pytest.mark.parametrize("chroma,bits,pix_fmt", [("420", 8, "yuv420p"), ("444", 8, "yuv444p"),
                                                  ("420", 10, "yuv420p10le")])
def test_raw_yuv_from_uvg_style_name(tmp_path, frames, chroma, bits, pix_fmt):
    path = tmp_path / f"Clip_64x48_30fps_{chroma}_{bits}bit_YUV.yuv"
    ffmpeg_convert(frames, path, "-f", "rawvideo", "-pix_fmt", pix_fmt)
    video = nvpkit.load_video(path, num_frames=4)
    assert video.frames.shape == (4, 48, 64, 3) and video.fps == 30
    assert psnr(video.frames, frames[:4]) > 30


def test_raw_yuv_size_from_arguments(tmp_path, frames):
    path = tmp_path / "clip.yuv"
    ffmpeg_convert(frames, path, "-f", "rawvideo", "-pix_fmt", "yuv420p")
    with pytest.raises(ValueError, match="needs size"):
        nvpkit.load_video(path)
    assert nvpkit.load_video(path, size=(64, 48)).num_frames == 6


def test_raw_yuv_of_odd_size(tmp_path, frames):
    """ffmpeg rounds subsampled chroma up: a 63x47 4:2:0 frame has 32x24 samples per chroma plane."""
    odd = np.ascontiguousarray(frames[:, :47, :63])
    path = tmp_path / "Clip_63x47_420_8bit.yuv"
    ffmpeg_convert(odd, path, "-f", "rawvideo", "-pix_fmt", "yuv420p")
    assert path.stat().st_size == 6 * (63 * 47 + 2 * 32 * 24)
    video = nvpkit.load_video(path)
    assert video.frames.shape == (6, 47, 63, 3) and psnr(video.frames, odd) > 30
    with pytest.raises(ValueError, match=r"Clip_63x47_420_8bit.yuv'.*chroma='411'"):
        nvpkit.load_video(path, chroma="411")
    with pytest.raises(ValueError, match=r"Clip_63x47_420_8bit.yuv'.*bit_depth=12"):
        nvpkit.load_video(path, bit_depth=12)


def test_parse_yuv_name():
    assert parse_yuv_name("Jockey_1920x1080_120fps_420_8bit_YUV.yuv") == {
        "width": 1920, "height": 1080, "fps": 120.0, "chroma": "420", "bit_depth": 8}


def test_npy_and_array(tmp_path, frames):
    np.save(tmp_path / "clip.npy", frames)
    np.testing.assert_array_equal(nvpkit.load_video(tmp_path / "clip.npy").frames, frames)
    np.testing.assert_array_equal(nvpkit.load_video(frames).frames, frames)


def test_selection_crop_and_downscale(frames):
    video = nvpkit.load_video(frames, num_frames=2, start=1, stride=2, crop=(4, 8, 40, 48), downscale=4)
    assert video.frames.shape == (2, 10, 12, 3)
    block = frames[3, 4:8, 8:12].astype(float).mean((0, 1))  # second kept frame is index 3
    np.testing.assert_array_equal(video.frames[1, 0, 0], np.floor(block + 0.5))


def test_stream_selection_matches_random_access(tmp_path, frames):
    path = nvpkit.write_video(frames, tmp_path / "clip.mp4")
    every = nvpkit.load_video(path).frames
    np.testing.assert_array_equal(nvpkit.load_video(path, num_frames=2, start=1, stride=3).frames, every[[1, 4]])


# -- bad input: a clear error naming the file and the problem ---------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4.*does not exist"):
        nvpkit.load_video(tmp_path / "nope.mp4")


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no png/jpg frames"):
        nvpkit.load_video(tmp_path)


def test_frames_of_different_sizes(tmp_path, frames):
    iio.imwrite(tmp_path / "f1.png", frames[0])
    iio.imwrite(tmp_path / "f2.png", frames[1, :40])
    with pytest.raises(ValueError, match="f2.png.*64x40.*64x48"):
        nvpkit.load_video(tmp_path)


def test_corrupt_image(tmp_path, frames):
    iio.imwrite(tmp_path / "f1.png", frames[0])
    (tmp_path / "f2.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="f2.png.*cannot read"):
        nvpkit.load_video(tmp_path)


def test_corrupt_video_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="broken.mp4.*ffmpeg"):
        nvpkit.load_video(path)


def test_a_slow_ffmpeg_start_is_tried_again_and_a_bad_file_is_not(tmp_path, monkeypatch):
    """imageio-ffmpeg gives up on ffmpeg's header after 10 s, as on a loaded machine: such a slow
    failure is tried again; a fast one (an unreadable file) is reported at once."""
    import nvpkit.data as data

    real, calls = data.imageio_ffmpeg.read_frames, []

    def slow_first_start(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.2)
            raise OSError("Could not load meta information")
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "HEADER_WAIT_S", 0.1)
    monkeypatch.setattr(data.imageio_ffmpeg, "read_frames", slow_first_start)
    assert nvpkit.load_video("sample", 2, downscale=8).num_frames == 2 and len(calls) == 2
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    calls.clear()
    monkeypatch.setattr(data, "HEADER_WAIT_S", 9.5)
    with pytest.raises(ValueError, match="ffmpeg cannot read it as a video"):
        nvpkit.load_video(bad)
    assert len(calls) == 1


def test_fewer_frames_than_asked(tmp_path, frames):
    with pytest.raises(ValueError, match="has 6 frames.*selects 3, fewer than num_frames=4"):
        nvpkit.load_video(frames, num_frames=4, stride=2)
    path = nvpkit.write_video(frames, tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="clip.mp4.*selected 6 frames, fewer than num_frames=10"):
        nvpkit.load_video(path, num_frames=10)


def test_truncated_raw_yuv(tmp_path, frames):
    path = tmp_path / "Clip_64x48_420_8bit.yuv"
    ffmpeg_convert(frames, path, "-f", "rawvideo", "-pix_fmt", "yuv420p")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated.*4608 bytes each"):
        nvpkit.load_video(path)


def test_bad_arrays_and_arguments(tmp_path, frames):
    with pytest.raises(ValueError, match="uint8"):
        nvpkit.load_video(frames.astype(np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npy.*not a readable"):
        nvpkit.load_video(tmp_path / "objects.npy")
    with pytest.raises(ValueError, match="stride=0 is not allowed; use an int >= 1"):
        nvpkit.load_video(frames, stride=0)
    with pytest.raises(ValueError, match="crop=.*does not fit"):
        nvpkit.load_video(frames, crop=(0, 0, 100, 10))


def test_write_video_refuses_to_overwrite(tmp_path, frames):
    path = nvpkit.write_video(frames, tmp_path / "clip.mp4")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        nvpkit.write_video(frames, path)
    nvpkit.write_video(frames[:2], path, overwrite=True)
    assert nvpkit.load_video(path).num_frames == 2
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp files left


def test_write_png_folder(tmp_path, frames):
    out = nvpkit.write_video(frames, tmp_path / "recon")
    assert sorted(p.name for p in out.iterdir())[:2] == ["f00001.png", "f00002.png"]
    np.testing.assert_array_equal(nvpkit.load_video(out).frames, frames)
