"""Fetching datasets (nvpkit/datasets.py) against an HTTP server on 127.0.0.1 serving a generated archive."""
import hashlib
import http.server
import json
import threading

import numpy as np
import py7zr
import pytest

import nvpkit
from nvpkit import datasets
from nvpkit.datasets import FetchError, RawClip

WIDTH, HEIGHT, FRAMES = 32, 16, 3


def _yuv_frames() -> bytes:
    rng = np.random.default_rng(0)
    return rng.integers(16, 235, size=FRAMES * WIDTH * HEIGHT * 3 // 2, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[bytes, bytes]:
    """A 7z archive as UVG ships them (the YUV and a copyright note), and the YUV's bytes."""
    folder = tmp_path_factory.mktemp("archive")
    raw = _yuv_frames()
    (folder / "Tiny_32x16_25fps_420_8bit_YUV.yuv").write_bytes(raw)
    (folder / "Tiny_Copyright.txt").write_text("test material")
    with py7zr.SevenZipFile(folder / "tiny.7z", "w") as z:
        z.write(folder / "Tiny_32x16_25fps_420_8bit_YUV.yuv", "Tiny_32x16_25fps_420_8bit_YUV.yuv")
        z.write(folder / "Tiny_Copyright.txt", "Tiny_Copyright.txt")
    return (folder / "tiny.7z").read_bytes(), raw


class Server:
    """Serves ``body`` at /tiny.7z with range requests; ``cut`` bytes into a full response it stops
    (announcing the whole length), ``announce`` overrides the announced length."""

    def __init__(self, body: bytes):
        self.body, self.cut, self.announce, self.requests = body, None, None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                data = server.body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(server.announce or len(data)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                self.end_headers()
                self.wfile.write(data[:server.cut] if server.cut is not None else data)
                if server.cut is not None:
                    server.cut = None  # the next request is served whole
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def clip(self, size: int | None = None) -> RawClip:
        return RawClip("uvg/Tiny", "tiny.7z", size or len(self.body), WIDTH, HEIGHT, FRAMES, 25.0, url=self.url)


@pytest.fixture
def server(archive):
    served = Server(archive[0])
    yield served
    served.httpd.shutdown()


def _cache_is_clean(root):
    """Nothing but finished sequences and resumable downloads: no staging folder anywhere."""
    return not [p for p in root.rglob(".*") if p.name != ".partial" and p.parent.name != ".partial"]


def test_fetch_downloads_checks_and_records(server, archive, tmp_path):
    path = datasets.fetch(server.clip(), root=tmp_path, progress=False)
    assert path == tmp_path / "uvg" / "Tiny" / "Tiny_32x16_25fps_420_8bit_YUV.yuv"
    assert path.read_bytes() == archive[1]
    record = json.loads((path.parent / "nvpkit.json").read_text())
    assert record["sha256"] == hashlib.sha256(archive[1]).hexdigest()
    assert record["frames"] == FRAMES and record["yuv_bytes"] == len(archive[1])
    assert not list((tmp_path / ".partial").iterdir()) and _cache_is_clean(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["Tiny_32x16_25fps_420_8bit_YUV.yuv", "nvpkit.json"]
    # a second fetch downloads nothing and verifies the recorded hash
    served = len(server.requests)
    assert datasets.fetch(server.clip(), root=tmp_path, progress=False) == path
    assert len(server.requests) == served
    path.write_bytes(archive[1][:-1] + bytes([archive[1][-1] ^ 1]))
    with pytest.raises(FetchError, match="changed since it was fetched"):
        datasets.fetch(server.clip(), root=tmp_path, progress=False)


def test_an_interrupted_download_resumes(server, archive, tmp_path):
    server.cut = len(archive[0]) // 2
    with pytest.raises(FetchError, match="run the same fetch again to resume"):
        datasets.fetch(server.clip(), root=tmp_path, progress=False)
    part = tmp_path / ".partial" / "uvg--Tiny.7z.part"
    assert part.stat().st_size == len(archive[0]) // 2
    assert not (tmp_path / "uvg" / "Tiny").exists() and _cache_is_clean(tmp_path)
    path = datasets.fetch(server.clip(), root=tmp_path, progress=False)
    assert server.requests[-1] == f"bytes={len(archive[0]) // 2}-"  # only the rest was asked for
    assert path.read_bytes() == archive[1]


def test_a_truncated_archive_is_refused(archive, tmp_path):
    """The server's archive is short of the size nvpkit knows: refused before anything is written."""
    served = Server(archive[0][:-100])
    try:
        with pytest.raises(FetchError, match=f"offers {len(archive[0]) - 100:,} bytes.*has {len(archive[0]):,}"):
            datasets.fetch(served.clip(len(archive[0])), root=tmp_path, progress=False)
    finally:
        served.httpd.shutdown()
    assert not (tmp_path / "uvg").exists() and not list((tmp_path / ".partial").iterdir())


def test_a_wrong_size_is_refused(server, archive, tmp_path):
    server.announce = len(archive[0]) + 7
    with pytest.raises(FetchError, match="changed upstream"):
        datasets.fetch(server.clip(), root=tmp_path, progress=False)
    assert not (tmp_path / "uvg").exists()
    wrong = RawClip("uvg/Tiny", "tiny.7z", len(archive[0]), WIDTH, HEIGHT, FRAMES + 1, 25.0, url=server.url)
    server.announce = None
    with pytest.raises(FetchError, match="not the .* of 4 frames"):  # the YUV's size, from the listing
        datasets.fetch(wrong, root=tmp_path, progress=False)
    assert not (tmp_path / "uvg" / "Tiny").exists() and _cache_is_clean(tmp_path)


def test_a_corrupt_archive_is_refused_and_deleted(archive, tmp_path):
    body = bytearray(archive[0])
    body[len(body) // 2] ^= 0xFF  # the compressed YUV, damaged in the middle
    served = Server(bytes(body))
    try:
        with pytest.raises(FetchError, match="damaged"):
            datasets.fetch(served.clip(), root=tmp_path, progress=False)
    finally:
        served.httpd.shutdown()
    assert not (tmp_path / "uvg" / "Tiny").exists() and _cache_is_clean(tmp_path)
    assert not list((tmp_path / ".partial").iterdir())  # a damaged archive is downloaded anew next time


def test_load_video_reads_a_fetched_sequence_by_name(server, archive, tmp_path, monkeypatch):
    clip = server.clip()
    monkeypatch.setenv("NVPKIT_DATA", str(tmp_path))
    monkeypatch.setitem(datasets.DATASETS, clip.name, clip)
    with pytest.raises(FileNotFoundError, match="nvpkit data fetch uvg/Tiny"):
        nvpkit.load_video("uvg/Tiny")
    datasets.fetch("uvg/Tiny", progress=False)
    video = nvpkit.load_video("uvg/Tiny")
    assert video.frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and video.fps == 25.0 and video.name == "Tiny"
    direct = nvpkit.load_video(datasets.dataset_path("uvg/Tiny"))  # the same file read by path
    assert np.array_equal(video.frames, direct.frames)


def test_unknown_datasets_are_named():
    with pytest.raises(ValueError, match="'uvg/Jokey' is not known.*uvg/Jockey"):
        datasets.fetch("uvg/Jokey")


def test_the_uvg_registry_matches_the_published_sequences():
    """Seven 1080p sequences of 600 frames (ShakeNDry 300), 120 fps, 4:2:0: 3,110,400 bytes a frame."""
    uvg = {n: c for n, c in datasets.DATASETS.items() if n.startswith("uvg/")}
    assert sorted(uvg) == ["uvg/Beauty", "uvg/Bosphorus", "uvg/HoneyBee", "uvg/Jockey", "uvg/ReadySetGo",
                           "uvg/ShakeNDry", "uvg/YachtRide"]
    assert {n: c.frames for n, c in uvg.items() if c.frames != 600} == {"uvg/ShakeNDry": 300}
    assert uvg["uvg/Jockey"].yuv_bytes == 600 * 3_110_400
    assert uvg["uvg/Jockey"].archive == "Jockey_1920x1080_120fps_420_8bit_YUV_RAW.7z"
