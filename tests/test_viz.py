"""The visual layer: the frame viewer, the bits figure, quiet progress bars."""
import io

import numpy as np
import pytest

import nvpkit
from nvpkit._progress import QUIET_S, progress_bar


@pytest.fixture(scope="module")
def models(tiny_video):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=30, batch=2048, device="cpu")
    trainer.train(progress=False)
    decoded = nvpkit.make_compressor("quantize", bits=4).roundtrip(trainer.model).to_model()
    return {"float32": trainer.model, "4-bit": decoded}


def test_frame_viewer_shows_a_frame_and_moves_to_another(tiny_video, models, tmp_path):
    viewer = nvpkit.FrameViewer(tiny_video, models)
    assert [len(p) for p in viewer.psnr.values()] == [tiny_video.num_frames] * 2
    fig = viewer.figure(0)
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 1 + 2 + 2 and all(t.source.startswith("data:image/png;base64,") for t in images)
    assert fig.layout.title.text.startswith(f"frame 1 of {tiny_video.num_frames}: float32 ")
    before = images[1].source
    viewer.show(5)
    assert fig.layout.title.text.startswith(f"frame 6 of {tiny_video.num_frames}") and images[1].source != before
    assert fig.layout.shapes[0].x0 == 6
    frames = viewer.frame(5)
    assert frames["4-bit"].dtype == np.uint8 and frames["4-bit"].shape == tiny_video.frames[5].shape
    assert viewer.frame_psnr(frames)["float32"] == pytest.approx(viewer.psnr["float32"][5], abs=1e-6)
    written = viewer.save(tmp_path, indices=[0, 3])
    assert written == ["frame_00001.png", "frame_00004.png"]
    assert all((tmp_path / name).stat().st_size > 5_000 for name in written)
    with pytest.raises(ValueError, match="models is empty"):
        nvpkit.FrameViewer(tiny_video, {})


def test_bits_figure_stacks_every_part(models, tmp_path):
    result = nvpkit.make_compressor("quantize").roundtrip(models["float32"])
    bits = {**result.bits(), "container": nvpkit.container_bits(result)}
    fig = nvpkit.bits_figure({"8-bit": bits})
    assert [t.name for t in fig.data] == ["xy", "xt", "yt", "sparse", "decoder", "side", "container"]
    assert sum(t.y[0] for t in fig.data) == pytest.approx((bits["total"] + bits["container"]) / 8 / 1024)
    assert nvpkit.viz.save_figure(fig, tmp_path, "bits") == ["bits.html", "bits.png"]
    assert (tmp_path / "bits.png").stat().st_size > 5_000


def test_progress_bars_are_quiet_off_a_terminal():
    log = io.StringIO()  # not a terminal
    bar = progress_bar(range(2000), desc="steps", file=log)
    for i in bar:
        bar.set_postfix(refresh=False, psnr=f"{i:.2f}")
    assert bar.mininterval == QUIET_S
    assert log.getvalue().count("\r") <= 3  # the first draw and the last, not one per update


def _png(fig, path):
    from PIL import Image
    nvpkit.viz.figure_png(fig, path)
    return np.asarray(Image.open(path).convert("RGB"))


def test_pngs_keep_error_bars_and_dashes(tmp_path):
    import plotly.graph_objects as go

    def figure(error: bool, dash: str) -> go.Figure:
        bars = dict(type="data", array=[0.6, 0.5, 0.4]) if error else None
        return go.Figure(go.Scatter(x=[1, 2, 3], y=[1.0, 3.0, 2.0], mode="lines+markers", line=dict(color="#d62728", dash=dash),
                                    error_y=bars))

    red = lambda image: int(((image[..., 0] > 150) & (image[..., 1] < 90) & (image[..., 2] < 90)).sum())  # noqa: E731
    plain, bars = _png(figure(False, "solid"), tmp_path / "a.png"), _png(figure(True, "solid"), tmp_path / "b.png")
    dashed = _png(figure(False, "dash"), tmp_path / "c.png")
    assert not np.array_equal(plain, bars) and red(bars) > red(plain)  # the bars are drawn in the trace's colour
    assert red(dashed) < red(plain)  # gaps in the line


def test_a_long_legend_goes_below_the_axes(tmp_path):
    import plotly.graph_objects as go

    def figure(curves: int) -> go.Figure:
        return go.Figure([go.Scatter(x=[1, 2], y=[i, i + 1.0], mode="lines+markers", name=f"a long setting label {i}")
                          for i in range(curves)])

    short = _png(figure(2), tmp_path / "a.png")
    long = _png(figure(nvpkit.viz.figures.LEGEND_INSIDE + 2), tmp_path / "b.png")
    assert long.shape[0] > short.shape[0] + 100  # 6 lines of legend added below the axes


def test_a_folders_html_figures_share_one_plotly_js(tmp_path):
    import plotly.graph_objects as go
    for name in ("one", "two", "three"):
        nvpkit.viz.save_figure(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), tmp_path, name)
    scripts = [p for p in tmp_path.iterdir() if p.suffix == ".js"]
    assert [p.name for p in scripts] == ["plotly.min.js"] and scripts[0].stat().st_size > 10**6
    for name in ("one", "two", "three"):
        html = (tmp_path / f"{name}.html").read_text()
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in html and len(html) < 50_000
