import numpy as np
import pytest
import torch

import nvpkit


@pytest.fixture(scope="session")
def tiny_video() -> nvpkit.Video:
    """8 frames of the shipped sample at 90x160."""
    return nvpkit.load_video("sample", num_frames=8, downscale=8)


@pytest.fixture
def frames() -> np.ndarray:
    """Smooth random-ish uint8 frames [6, 48, 64, 3] (codec-friendly, distinct per frame)."""
    t, y, x = np.meshgrid(np.arange(6), np.arange(48), np.arange(64), indexing="ij")
    rgb = np.stack([x * 3 + t * 10, y * 4 + t * 5, (x + y) * 2 + 40], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
