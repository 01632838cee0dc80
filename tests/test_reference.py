"""The fast training step computes what the straightforward port of the published step computes."""
import torch

import nvpkit
from nvpkit.reference import PortNVP, port_batch, port_update


def test_port_and_fast_model_agree(tiny_video):
    model = nvpkit.NVP(nvpkit.size_sparse_grid(nvpkit.load_config("cpu_s"), 8, 90, 160))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    port = PortNVP(model)
    coords, steps = torch.rand(3000, 3), torch.rand(3000)
    coords[:4] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    torch.testing.assert_close(model(coords, steps), port(coords, steps), rtol=1e-4, atol=1e-5)


def test_same_loss_curve_from_the_same_seed(tiny_video):
    trainer = nvpkit.Trainer.from_config(tiny_video, "cpu_s", steps=40, batch=2048, device="cpu")
    port = PortNVP(trainer.model)
    optimizer = torch.optim.AdamW(port.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40, eta_min=1e-5)
    generator = torch.Generator().manual_seed(0)
    frames = torch.from_numpy(tiny_video.frames)
    fast, slow = [], []
    for _ in range(25):
        batch = port_batch(frames, 2048, generator)
        fast.append(trainer.step(batch).item())
        slow.append(port_update(port, optimizer, *batch).item())
        schedule.step()
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(slow), rtol=1e-4, atol=1e-7)
    assert fast[-1] < fast[0] / 3
