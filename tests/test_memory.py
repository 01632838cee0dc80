"""Memory of every stage grows with the clip by at most a small multiple of one uint8 frame plus the
model's state per frame (the sparse grid has a cell per frame): measured by
benchmarks/stage_memory.py, each clip length in a fresh process. The quantizer behind every codec
holds one float32 working copy and 8-bit codes."""
import importlib.util
from pathlib import Path

import pytest
import torch

from nvpkit._device import reset_host_peak
from nvpkit.memory import EVAL_BYTES, TRAIN_BYTES

_SPEC = importlib.util.spec_from_file_location(
    "stage_memory", Path(__file__).resolve().parent.parent / "benchmarks" / "stage_memory.py")
stage_memory = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stage_memory)

FRAMES_PER_FRAME = 2
"""uint8 frames of working memory a stage may add per added frame (loading holds one: the clip)."""
BYTES_PER_PARAMETER = TRAIN_BYTES + EVAL_BYTES
"""What a stage may hold per parameter the longer clip's model has more: training state, a decoded copy."""


@pytest.mark.skipif(not reset_host_peak(), reason="needs Linux's /proc/self/clear_refs to measure peaks per stage")
def test_memory_per_added_frame_is_bounded_at_every_stage():
    reports = stage_memory.measure([4, 28], (288, 512), batch=1024)
    frame = reports[0]["frame_bytes"]
    slopes = stage_memory.slopes(reports)
    assert set(slopes) == set(stage_memory.STAGES)
    for stage, slope in slopes.items():
        allowed = FRAMES_PER_FRAME * frame + BYTES_PER_PARAMETER * slope["parameters_per_frame"]
        assert slope["bytes_per_frame"] <= allowed, (
            f"{stage}: {slope['bytes_per_frame'] / frame:.2f} uint8 frames per added frame, allowed "
            f"{allowed / frame:.2f}")
    assert slopes["load"]["bytes_per_frame"] > 0.8 * frame  # the measurement sees one frame's bytes


@pytest.mark.skipif(not reset_host_peak(), reason="needs Linux's /proc/self/clear_refs to measure peaks")
def test_quantizer_working_memory():
    """Quantizing holds one float32 working copy and the 8-bit codes; dequantizing 8-bit codes only
    the float32 result (the codecs' channels of a published sparse grid are 54 M values each)."""
    from nvpkit._device import host_memory, host_peak_memory
    from nvpkit.quantization import dequantize, quantize

    x = torch.randn(2**25)

    def peak_per_value(run):
        reset_host_peak()
        base = host_memory()
        kept = run()
        return (host_peak_memory() - base) / x.numel(), kept

    quantizing, (codes, lo, hi) = peak_per_value(lambda: quantize(x, 8))
    assert codes.dtype == torch.uint8
    dequantizing, values = peak_per_value(lambda: dequantize(codes, lo, hi, 8))
    assert quantizing <= 4 + 1 + 0.5, f"quantize: {quantizing:.2f} bytes per value"
    assert dequantizing <= 4 + 0.5, f"dequantize: {dequantizing:.2f} bytes per value"
    assert (values - x).abs().max() <= (hi - lo) / 255 * (0.5 + 1e-3)  # the module's rounding bound
