"""Compression of NVP latent grids, in process: codecs, whole-model compressors, artifacts, RD tools."""
from .artifact import ArtifactError, load_compressed, save_compressed
from .base import Codec, Encoded, Float, Quantize, dequantize, quantize
from .codecs import AV1, H264, HEVC, JPEG, PNG, CodecError, WebP
from .compressor import CODECS, COMPRESSORS, Compressed, Compressor, make_compressor
from .rd import find_setting, rd_figure, rd_sweep, video_anchor
from .tucker import Tucker, tucker, tucker_to_tensor

__all__ = [
    "ArtifactError", "load_compressed", "save_compressed", "Codec", "Encoded", "Float", "Quantize", "dequantize",
    "quantize", "AV1", "H264", "HEVC", "JPEG", "PNG", "CodecError", "WebP", "CODECS", "COMPRESSORS", "Compressed",
    "Compressor", "make_compressor", "find_setting", "rd_figure", "rd_sweep", "video_anchor", "Tucker", "tucker",
    "tucker_to_tensor",
]
