"""Memory: the bytes each thing nvpkit holds takes, in one place.

The planner (``experiments.planning``), the model's and trainer's checks and the artifact reader
(``compress.artifact``, through each codec's ``decode_work``) all count with these constants and
rules, so a plan, a refusal and a decode budget agree. Sizes are per parameter (float32 model
values) or per stored value; the codecs' own shapes (padding, factors) are theirs to state.
"""
from __future__ import annotations

__all__ = ["FLOAT32", "TRAIN_BYTES", "EVAL_BYTES", "DECODED_BYTES", "CHECKPOINT_BYTES", "RESIDUAL_BYTES",
           "RATE_BYTES", "RATE_SAMPLE_BYTES", "BIT_CHUNK", "FFMPEG_BYTES", "DECODER_FRAMES", "clip_on_device",
           "code_bytes"]

FLOAT32 = 4
"""Bytes of one float32 value: a parameter, a decoded value."""
TRAIN_BYTES = 16
"""Bytes per parameter of an arm in training: value, gradient and two AdamW moments, float32."""
EVAL_BYTES = 8
"""Bytes per parameter of a compression: the decoded tensors and the model built from them."""
DECODED_BYTES = FLOAT32
"""Bytes per parameter of a decoded model kept after the final compression (float32 values)."""
CHECKPOINT_BYTES = 12
"""Bytes per parameter of a checkpoint: the values and the two AdamW moments."""
RESIDUAL_BYTES = 2 * FLOAT32
"""Bytes per grid value of codec-in-the-loop training (``codec_ste``): the codec's residual kept
between round trips and the step's copy of the grids it is added to."""
RATE_BYTES = {"tv": 8 * FLOAT32, "entropy": 4 * FLOAT32}
"""Bytes per grid value of a rate term (``nvpkit.rate``) in a step: the values in quantization steps
and their gradient, plus, for ``tv``, the differences along each axis and theirs; for ``entropy``,
each grid's values joined into one vector and its gradient."""
RATE_SAMPLE_BYTES = 128 * FLOAT32
"""Bytes per value the entropy estimator draws: its density's layers at both ends of the value's
interval, kept for the backward pass, and their gradients."""
BIT_CHUNK = 2**16
"""Values packed or unpacked at a time by bit packing (a multiple of 8: every chunk is whole bytes)."""
FFMPEG_BYTES = 64 * 2**20
"""Bytes of one ffmpeg decoder process besides its frames (the binary, its libraries, its buffers)."""
DECODER_FRAMES = 24
"""Frames a video decoder holds at once (reference frames and each thread's frame in flight)."""


def clip_on_device(clip_bytes: int, free_device_bytes: int) -> bool:
    """Whether a uint8 clip is copied to the GPU for training: when it takes at most half the free
    device memory (the rest is left for the model); otherwise it stays in pinned host memory."""
    return clip_bytes <= free_device_bytes // 2


def code_bytes(bits: int) -> int:
    """Bytes of one quantization code of ``bits`` bits as the codecs hold it (uint8 up to 8 bits,
    else int32)."""
    return 1 if bits <= 8 else 4
