"""Compression of NVP latent grids, in process: codecs, whole-model compressors, artifacts, RD tables."""
from .artifact import ArtifactError, container_bits, load_compressed, save_compressed
from .base import Codec, Encoded, Float, Quantize
from .codecs import AV1, H264, HEVC, JPEG, PNG, SVTAV1, VVC, CodecError, WebP
from .compressor import CODECS, COMPRESSORS, SETTING_HELP, Compressed, Compressor, make_compressor, preset_settings
from .rd import anchor_label, find_setting, rd_sweep, video_anchor, write_rd
from .tucker import Tucker, hooi, tucker_to_tensor

__all__ = [
    "ArtifactError", "container_bits", "load_compressed", "save_compressed", "anchor_label", "Codec", "Encoded", "Float", "Quantize", "AV1", "H264", "VVC", "SVTAV1",
    "HEVC", "JPEG", "PNG", "CodecError", "WebP", "CODECS", "COMPRESSORS", "SETTING_HELP", "Compressed", "Compressor",
    "make_compressor", "preset_settings", "find_setting", "rd_sweep", "video_anchor", "write_rd", "Tucker", "hooi",
    "tucker_to_tensor",
]
