import math
import struct

import numpy as np
import pytest
import torch

import nvpkit
from nvpkit.compress import (AV1, H264, HEVC, JPEG, PNG, SVTAV1, VVC, CodecError, Compressor, Float, Quantize, Tucker,
                             WebP, make_compressor)
from nvpkit.quantization import dequantize, quantize
from nvpkit.compress.base import pack_bits, unpack_bits
from nvpkit.compress.rd import anchor_decode, anchor_encode


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 6, 40, 64))
    with torch.no_grad():  # smooth, trained-looking values
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        net.sparse.embeddings.copy_(torch.randn(6, 11, 10, 2).cumsum(1).cumsum(2) * 0.05)
    return net


def smooth(*shape):
    x = torch.randn(*shape)
    for d in range(len(shape)):
        x = x.cumsum(d)
    return x


# -- exact accounting ---------------------------------------------------------------------------------

def test_published_tucker_size_from_shapes():
    """NVP-S, ranks (480, 240, 240) per channel on the sparse grid, all float32, 600 frames of 1080x1920."""
    bits = make_compressor("tucker").shape_bits(nvpkit.load_config("nvp_s"))
    assert bits["sparse"] == 2 * (480 * 240 * 240 + 600 * 480 + 2 * 300 * 240) * 32 + 2 * 3 * 32
    assert bits["xy"] + bits["xt"] + bits["yt"] == 27_696_672 * 32
    assert bits["decoder"] == 110_595 * 32
    assert round(bits["total"] / (600 * 1080 * 1920), 4) == 2.1597


@pytest.mark.parametrize("name,settings", [("float", {}), ("float", {"dtype": "float16"}), ("quantize", {}),
                                           ("quantize", {"bits": 6}), ("tucker", {"ranks": (3, 5, 4)}),
                                           ("tucker", {"ranks": (3, 5, 4), "storage": "uint8"})])
def test_shape_bits_equal_the_encoded_bits(model, name, settings):
    compressor = make_compressor(name, **settings)
    result = compressor.roundtrip(model)
    assert compressor.shape_bits(model.config)["total"] == result.bits()["total"]


def test_the_ledger_counts_what_a_decoder_must_know(model):
    """Each part's side bits hold its codec and the settings its decoder needs (bit depth, float
    type, storage), one byte each; settings only an encoder uses change nothing."""
    assert PNG(8).descriptor() != PNG(16).descriptor() and Float("float32").descriptor() != Float("float16").descriptor()
    assert HEVC(bit_depth=8).descriptor() != HEVC(bit_depth=10).descriptor() != H264(bit_depth=10).descriptor()
    assert Tucker(storage="float32").descriptor() != Tucker(storage="uint8").descriptor()
    assert Quantize(6).descriptor() != Quantize(8).descriptor()
    assert HEVC(crf=21, preset="slow").descriptor() == HEVC(crf=30, preset="fast").descriptor()
    assert Tucker(ranks=(2, 3, 3), n_iter=5).descriptor() == Tucker(ranks=(4, 5, 5), n_iter=50).descriptor()
    result = make_compressor("hevc").roundtrip(model)
    side = sum(32 * (len(e.side) + len(e.header)) + 8 * len(e.descriptor) for e in result.encoded.values())
    assert result.bits()["side"] == side + nvpkit.compress.compressor.config_bits(model.config)
    assert all(e.descriptor for e in result.encoded.values())
    ten = make_compressor("hevc", bit_depth=10).roundtrip(model)
    assert ten.encoded["sparse"].descriptor != result.encoded["sparse"].descriptor
    assert nvpkit.container_bits(result) > 0


def test_bits_are_payload_plus_side_and_bpp(model):
    result = make_compressor("hevc").roundtrip(model)
    bits = result.bits()
    assert bits["sparse"] == 8 * len(result.encoded["sparse"].payload)
    assert bits["decoder"] == 32 * model.parameter_counts()["decoder"]
    assert bits["total"] == sum(v for k, v in bits.items() if k != "total")
    assert result.bpp((6, 40, 64)) == bits["total"] / (6 * 40 * 64)
    with pytest.raises(TypeError, match="depends on the content"):
        make_compressor("hevc").shape_bits(model.config)


# -- lossless, full-rank and quantization properties --------------------------------------------------------

@pytest.mark.parametrize("codec", [PNG(), PNG(16), WebP(lossless=True), Quantize(8)])
def test_lossless_image_settings_are_exact_up_to_quantization(codec):
    planes = [smooth(17, 17), smooth(30, 30), torch.zeros(5, 5)]
    decoded, encoded = codec.roundtrip(planes)
    bits = getattr(codec, "bit_depth", getattr(codec, "bits", 8))
    for x, y in zip(planes, decoded):
        q, lo, hi = quantize(x, bits)
        assert torch.equal(y, dequantize(q, lo, hi, bits))


def test_lossless_video_settings_are_exact_up_to_quantization():
    volumes = [smooth(5, 20, 18), smooth(4, 7, 9)]
    for codec in (HEVC(x265_params="lossless=1"), HEVC(x265_params="lossless=1", bit_depth=10), H264(crf=0)):
        decoded, _ = codec.roundtrip(volumes)
        for x, y in zip(volumes, decoded):
            q, lo, hi = quantize(x, codec.bit_depth)
            assert torch.equal(y, dequantize(q, lo, hi, codec.bit_depth)), codec


def test_float32_is_bit_exact(model):
    result = make_compressor("float").roundtrip(model)
    restored = result.to_model()
    for a, b in zip(model.state_dict().values(), restored.state_dict().values()):
        assert torch.equal(a, b)


def test_full_rank_tucker_reconstructs_to_float_precision():
    x = torch.randn(6, 9, 7)
    (y,), encoded = Tucker(ranks=(6, 9, 7)).roundtrip([x])
    assert (y - x).norm() / x.norm() < 1e-5
    assert encoded.header == [6, 9, 7]
    (low,), _ = Tucker(ranks=(2, 3, 3)).roundtrip([x])
    assert (low - x).norm() > 0.1 * x.norm()


@pytest.mark.parametrize("bits", [1, 3, 8, 11, 16])
def test_quantization_error_is_within_half_a_step(bits):
    x = torch.randn(1000) * 3
    q, lo, hi = quantize(x, bits)
    step = (hi - lo) / (2**bits - 1)
    assert (dequantize(q, lo, hi, bits) - x).abs().max() <= step / 2 * (1 + 1e-5)
    assert np.array_equal(unpack_bits(pack_bits(q.numpy(), bits), bits, 1000), q.numpy())


@pytest.mark.parametrize("bits", [1, 3, 4, 7, 9, 12, 16])
def test_bit_packing_is_big_endian_across_chunks(bits):
    from nvpkit.memory import BIT_CHUNK
    count = 2 * BIT_CHUNK + 5  # three chunks, the last partial
    codes = np.random.default_rng(bits).integers(0, 2**bits, count)
    packed = pack_bits(codes, bits)
    stream = "".join(format(int(c), f"0{bits}b") for c in codes)  # an independent bit string
    stream += "0" * (-len(stream) % 8)
    assert packed == int(stream, 2).to_bytes(len(stream) // 8, "big")
    assert np.array_equal(unpack_bits(packed, bits, count), codes)
    assert unpack_bits(packed, bits, count).dtype == (np.uint8 if bits <= 8 else np.int32)
    with pytest.raises(ValueError, match="take"):
        unpack_bits(packed + b"\0", bits, count)  # a payload longer than its values need
    with pytest.raises(ValueError, match="take"):
        unpack_bits(packed[:-1], bits, count)


def test_payloads_must_have_exactly_the_length_their_values_need():
    planes = [torch.rand(8, 8), torch.rand(4, 4)]
    for codec in (Quantize(4), Quantize(8), Float(), Float("float16")):
        encoded = codec.encode(planes)
        for payload in (encoded.payload + b"\0", encoded.payload[:-1]):
            with pytest.raises(ValueError, match="the payload has"):
                codec.decode(nvpkit.compress.Encoded(codec.name, {}, payload, encoded.side), [(8, 8), (4, 4)])
    assert Quantize(4).payload_range([(8, 8), (4, 4)]) == (40, 40)  # 80 values x 4 bits
    assert Float("float16").payload_range([(8, 8), (4, 4)]) == (160, 160)


def test_lossy_codecs_are_close_and_smaller(model):
    planes = [smooth(40, 40) for _ in range(2)]
    for codec in (JPEG(2), JPEG(quality=90), WebP(90)):
        decoded, encoded = codec.roundtrip(planes)
        assert len(encoded.payload) < 2 * 40 * 40
        for x, y in zip(planes, decoded):
            assert (x - y).abs().mean() < 0.02 * (x.max() - x.min())
    volume = [smooth(8, 24, 24)]
    for codec in (HEVC(), H264(), AV1()):
        (y,), encoded = codec.roundtrip(volume)
        assert len(encoded.payload) < 8 * 24 * 24
        assert ((volume[0] - y) ** 2).mean().sqrt() < 0.03 * (volume[0].max() - volume[0].min())


def test_load_into_keeps_the_parameters(model):
    target = nvpkit.NVP(model.config)
    params = [id(p) for p in target.parameters()]
    result = make_compressor("quantize").roundtrip(model)
    result.load_into(target)
    assert [id(p) for p in target.parameters()] == params
    coords, steps = torch.rand(100, 3), torch.rand(100)
    torch.testing.assert_close(target(coords, steps), result.to_model()(coords, steps))


# -- the one-file artifact ------------------------------------------------------------------------------------

def test_artifact_round_trip(model, tmp_path):
    result = make_compressor("hevc").roundtrip(model)
    info = nvpkit.save_compressed(result, tmp_path / "model.nvp")
    assert info["file_bytes"] == (tmp_path / "model.nvp").stat().st_size
    assert info["file_bytes"] == info["accounted_bytes"] + info["overhead_bytes"]
    assert 0 < info["overhead_bytes"] < 4096
    loaded, record = nvpkit.load_compressed(tmp_path / "model.nvp")
    assert record.bits() == result.bits()
    coords, steps = torch.rand(500, 3), torch.rand(500)
    assert torch.equal(loaded(coords, steps), result.to_model()(coords, steps))
    with pytest.raises(FileExistsError):
        nvpkit.save_compressed(result, tmp_path / "model.nvp")


def test_damaged_artifacts_fail_cleanly(model, tmp_path):
    path = tmp_path / "model.nvp"
    nvpkit.save_compressed(make_compressor("quantize").roundtrip(model), path)
    data = path.read_bytes()
    bad = tmp_path / "bad.nvp"
    for n in (0, 5, 11, 12, 40, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:n])
        with pytest.raises(nvpkit.ArtifactError):
            nvpkit.load_compressed(bad)
    bad.write_bytes(data + b"x")
    with pytest.raises(nvpkit.ArtifactError, match="trailing bytes"):
        nvpkit.load_compressed(bad)
    for i in np.random.default_rng(0).integers(0, len(data), 60):
        bad.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        try:  # a flip in the manifest must be refused; one in a payload may decode to other values
            nvpkit.load_compressed(bad)
        except nvpkit.ArtifactError:
            pass


def test_hostile_manifests_are_refused(tmp_path):
    import json
    import struct
    bad = tmp_path / "evil.nvp"

    def write(manifest):
        body = json.dumps(manifest).encode()
        bad.write_bytes(b"NVPKIT-C" + struct.pack("<I", len(body)) + body)

    parts = [{"name": n, "codec": "float", "params": {}, "side": [], "header": [], "length": 0}
             for n in ("xy", "xt", "yt", "sparse", "decoder")]
    huge = nvpkit.load_config("nvp_s").to_json()
    huge["nvp"]["3d_encoding"].update(t_resolution=65536, x_resolution=65536, y_resolution=65536)
    for manifest, match in [
        ({"format": 1, "config": huge, "parts": parts}, "more values"),
        ({"format": 2}, "unsupported format"),
        ({"format": 1, "config": nvpkit.load_config("cpu_s").to_json(), "parts": parts[:2]}, "parts must be"),
        ({"format": 1, "config": nvpkit.load_config("cpu_s").to_json(),
          "parts": [{**p, "codec": "os.system"} for p in parts]}, "unknown codec"),
        ({"format": 1, "config": nvpkit.load_config("cpu_s").to_json(),
          "parts": [{**p, "length": -5} for p in parts]}, "the payload has -5 bytes"),
        ({"format": 1, "config": nvpkit.load_config("cpu_s").to_json(), "parts": parts}, "the payload has 0 bytes; 20 channels of 252,720 values take exactly 1,010,880"),
    ]:
        write(manifest)
        with pytest.raises(nvpkit.ArtifactError, match=match):
            nvpkit.load_compressed(bad)
    bad.write_bytes(b"NVPKIT-C" + struct.pack("<I", 2**31))
    with pytest.raises(nvpkit.ArtifactError, match="manifest length"):
        nvpkit.load_compressed(bad)


# -- settings are validated, ffmpeg errors surface --------------------------------------------------------------

@pytest.mark.parametrize("build,match", [
    (lambda: HEVC(crf=52), "crf=52"), (lambda: AV1(crf=64), "crf=64"), (lambda: JPEG(qscale=0), "qscale=0"),
    (lambda: JPEG(qscale=40), r"\[1, 31\]"), (lambda: HEVC(bit_depth=12), "bit_depth=12"),
    (lambda: HEVC(preset="fastest"), "preset='fastest'"), (lambda: Tucker(ranks=(0, 2, 2)), "ranks="),
    (lambda: Float("float64"), "dtype='float64'"), (lambda: Quantize(0), "bits=0"),
    (lambda: make_compressor("zstd"), "unknown compressor 'zstd'"),
    (lambda: make_compressor("hevc", qscale=(2, 3)), "qscale="),
    (lambda: make_compressor("hevc", crf_value=3), "crf_value"),
    (lambda: Compressor(planes={"xy": Float()}), "planes must name"),
])
def test_bad_settings_name_the_parameter(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_rank_larger_than_mode_is_refused():
    with pytest.raises(ValueError, match=r"ranks\[1\]=20 is larger than mode 1 of size 9"):
        Tucker(ranks=(2, 20, 2)).roundtrip([torch.randn(4, 9, 5)])
    x = torch.randn(9, 5)
    assert Tucker(ranks=(20, 20), clip=True).ranks_for((9, 5)) == (5, 5)  # a 9x5 matrix has rank <= 5
    (y,), _ = Tucker(ranks=(20, 20), clip=True).roundtrip([x])
    torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)


def test_ffmpeg_failure_carries_the_encoder_message():
    with pytest.raises(CodecError, match="hevc encode failed.*x265 \\[error\\]: max cu size"):
        HEVC(x265_params="ctu=7").roundtrip([smooth(3, 16, 16)])


def test_wrong_channel_rank_is_refused():
    with pytest.raises(ValueError, match="hevc: channels must have 3 dims"):
        HEVC().roundtrip([torch.zeros(4, 4)])


# -- published settings on a trained model ---------------------------------------------------------------------

def test_hevc_jpeg_beats_8bit_quantization_on_a_trained_model(tiny_video):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=60, batch=4096, device="cpu")
    trainer.train(progress=False)
    rows = nvpkit.rd_sweep(trainer.model, tiny_video, {
        "8-bit": make_compressor("quantize"), "hevc crf 21": make_compressor("hevc"),
        "hevc crf 40": make_compressor("hevc", crf=40)}, progress=False)
    by = {r["label"]: r for r in rows}
    grids = lambda r: sum(r["parts"][k] for k in ("xy", "xt", "yt", "sparse"))  # noqa: E731
    assert grids(by["hevc crf 21"]) < 0.6 * grids(by["8-bit"])
    assert by["hevc crf 40"]["bpp"] < by["hevc crf 21"]["bpp"]
    assert by["hevc crf 40"]["psnr"] < by["hevc crf 21"]["psnr"] <= by["8-bit"]["psnr"] + 0.05


def test_compressed_model_renders_like_any_model(model, tiny_video):
    restored = make_compressor("h264").roundtrip(model).to_model()
    frames = list(nvpkit.render(restored, 3, 20, 32, video_frames=6))
    assert len(frames) == 3 and frames[0].shape == (20, 32, 3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compressors_on_cuda(model):
    gpu = nvpkit.NVP(model.config).cuda()
    gpu.load_state_dict(model.state_dict())
    for name in ("hevc", "tucker"):
        settings = {"ranks": (3, 5, 4)} if name == "tucker" else {}
        result = make_compressor(name, **settings).roundtrip(gpu)
        assert result.decoded["sparse"][0].is_cuda
        result.load_into(gpu)


def test_rd_helpers(tiny_video, model):
    anchor = nvpkit.video_anchor(tiny_video, crfs=(20, 35), progress=False)
    assert anchor[0]["bpp"] > anchor[1]["bpp"] and anchor[0]["psnr"] > anchor[1]["psnr"]
    fig = nvpkit.rd_figure({"x265": anchor})
    assert len(fig.data) == 1 and list(fig.data[0].x) == sorted(r["bpp"] for r in anchor)
    video = nvpkit.load_video(np.zeros((6, 40, 64, 3), np.uint8))
    best = nvpkit.find_setting(model, video, lambda c: make_compressor("h264", crf=c), range(0, 52, 3),
                               target_bpp=make_compressor("h264", crf=27).roundtrip(model).bpp(video),
                               progress=False)
    assert best["value"] == 27 and len(best["tried"]) <= 6
    assert math.isfinite(best["psnr"])


def test_tucker_on_the_2d_grids_too(model):
    result = make_compressor("tucker", ranks=(3, 5, 4), plane_ranks=(8, 8)).roundtrip(model)
    assert result.encoded["xy"].codec == "tucker"
    small = result.encoded["xy"].header[:2]
    assert small == [8, 8]  # the 16x16 first level keeps rank 8; levels under 8 clip to their size
    assert result.bits()["xy"] < make_compressor("float").roundtrip(model).bits()["xy"]


@pytest.mark.parametrize("codec", [VVC(preset="faster"), VVC(bit_depth=10, preset="faster"), SVTAV1(preset=12),
                                   SVTAV1(bit_depth=10, preset=12)])
def test_vvc_and_svtav1_volumes(codec):
    x = smooth(5, 20, 30)
    (y,), encoded = codec.roundtrip([x])
    assert y.shape == x.shape and (y - x).abs().max() < 0.2 * (x.max() - x.min())
    # a decoder holding only the counted bits (descriptor, float32 side, int32 header, payload) decodes it
    counted = (encoded.descriptor + struct.pack(f"<{len(encoded.side)}f", *encoded.side)
               + struct.pack(f"<{len(encoded.header)}i", *encoded.header) + encoded.payload)
    assert 8 * len(counted) == encoded.side_bits + encoded.payload_bits
    codec_id, depth = counted[:2]
    cls = next(c for c in nvpkit.compress.CODECS.values() if c.codec_id == codec_id)
    side = list(struct.unpack_from("<2f", counted, 2))
    (length,) = struct.unpack_from("<i", counted, 10)
    decoder = cls(bit_depth=depth)  # only the decoder's settings: crf and preset are the encoder's
    (again,) = decoder.decode(nvpkit.compress.Encoded(cls.name, {}, counted[14:14 + length], side, [length]),
                              [tuple(x.shape)])
    assert torch.equal(again, y) and 14 + length == len(counted)


def test_vvc_and_svtav1_presets_and_anchors(tiny_video, model):
    result = make_compressor("vvc", crf=40, preset="faster").roundtrip(model)
    assert result.encoded["sparse"].codec == "vvc" and result.bits()["sparse"] > 0
    clip = tiny_video.head(3)
    for codec, preset in (("vvc", "faster"), ("svtav1", "12")):
        (row,) = nvpkit.video_anchor(clip, codec, [40], preset=preset, progress=False)
        stream = anchor_encode(clip, codec, 40, preset, "420")
        decoded = np.stack([f.numpy() for f in anchor_decode(stream, clip, codec)]).astype(np.float64)
        mse = ((decoded - clip.frames) ** 2).mean(axis=(1, 2, 3))  # per frame, over RGB
        assert row["bits"] == 8 * len(stream)
        assert row["psnr"] == pytest.approx(np.mean(10 * np.log10(255**2 / mse)), abs=1e-5)  # float32 sums
    with pytest.raises(ValueError, match="chroma='444' is not allowed"):
        nvpkit.video_anchor(tiny_video, "vvc", [40], chroma="444")
    with pytest.raises(ValueError, match="preset='slow' is not allowed"):
        nvpkit.video_anchor(tiny_video, "svtav1", [40], preset="slow")


def test_a_missing_encoder_is_named_when_first_used(monkeypatch):
    monkeypatch.setattr(nvpkit.compress.codecs, "ffmpeg_encoders", lambda: frozenset({"libx264"}))
    codec = VVC()  # building it needs no encoder
    with pytest.raises(CodecError, match="has no libvvenc encoder"):
        codec.encode([torch.rand(2, 16, 16)])
