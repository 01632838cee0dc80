"""Pixel samples per second of the training step: nvpkit's fast path against the straightforward port.

    python benchmarks/train_step.py                       # CPU (and CUDA when present)
    python benchmarks/train_step.py --device cuda --full-size   # the published run's sizes (GPU)

Model: NVP-S's decoder width (128 neurons, 3 layers) and published 2D grids (16 levels x 2
features), sparse grid sized to the clip (``size_sparse_grid``). The port (``nvpkit.reference``)
samples each level with ``F.grid_sample``, concatenates nine sparse-grid gathers, draws batches on
the host and steps an unfused AdamW. Both start from the same weights; the script first runs both
on identical batches and prints the two loss curves, then times them alternately and prints the
median step time, samples/s and the ratio, the fast step's cost split, peak memory, and the
decoder's matmul floor on this machine, the time of the published 144,700-step schedule at the
measured step time, and the seconds to render one 1080p frame. ``--full-size`` replaces the clip
by a synthetic 600-frame 1080p video (content does not change the speed) and uses the published
batch, so the schedule estimate is the published run's.
"""
from __future__ import annotations

import argparse
import math
import resource
import statistics
import time

import numpy as np
import torch

import nvpkit
from nvpkit import _kernels
from nvpkit.reference import PortNVP, port_batch, port_update
from nvpkit.grids import LOOKUPS
from nvpkit.train import PUBLISHED_BATCH, PUBLISHED_STEPS




def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` calls after one warm-up."""
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def decoder_flops(config: nvpkit.NVPConfig) -> int:
    """Multiply-adds x 2 of the decoder's forward pass per sample, times 3 for forward + backward."""
    latent, hidden, layers = config.latent_features, config.network.n_neurons, config.network.n_hidden_layers
    macs = latent * hidden + (layers - 1) * (hidden + latent) * hidden  # modulator
    macs += hidden + (layers - 1) * hidden * hidden + hidden * 3  # SIREN
    return 3 * 2 * macs


def matmul_rates(device: torch.device, n: int = 16384, k: int = 243, m: int = 128) -> dict[str, float]:
    """FLOP/s of the decoder's largest product ``[m, k] @ [k, n]`` through ``torch.mm`` (MKL on the
    CPU, cuBLAS on CUDA) and, on the CPU, through the oneDNN product the fast step uses."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    rates = {"torch.mm": 2 * m * k * n / timed(lambda: a @ b, device, 9)}
    if device.type == "cpu" and _kernels._ONEDNN is not None:
        bt = b.t()
        rates["oneDNN"] = 2 * m * k * n / timed(lambda: _kernels._mm(a, bt), device, 9)
    return rates


def run(device: torch.device, video: nvpkit.Video, batch: int, args: argparse.Namespace) -> None:
    repeat, rounds, compare = args.repeat, args.rounds, args.compare
    config = nvpkit.size_sparse_grid(nvpkit.load_config("nvp_s"), video.num_frames, video.height, video.width)
    trainer = nvpkit.Trainer.from_config(video, config, steps=10_000, batch=batch, device=str(device), seed=args.seed,
                                         compile=args.compile)
    for plane in (trainer.model.xy, trainer.model.xt, trainer.model.yt):
        plane.lookup = args.lookup

    def fast(fn):  # the fast step's settings around fn: TF32 matmuls (CUDA) only when asked
        def call(*a):
            torch.backends.cuda.matmul.allow_tf32 = args.tf32
            try:
                return fn(*a)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
        return call

    fast_step = fast(trainer.step)

    port = PortNVP(trainer.model).to(device)
    port_opt = torch.optim.AdamW(port.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False, fused=False)
    frames = torch.from_numpy(video.frames)
    generator = torch.Generator().manual_seed(args.seed)
    counts = trainer.model.parameter_counts()
    print(f"\n== {device} | {video} | NVP-S grids + decoder, sparse {config.sparse.shape} | "
          f"{counts['total']:,} parameters | batch {batch:,} | fast step: compile={args.compile}, tf32={args.tf32}, "
          f"lookup={args.lookup}")

    # over long comparisons a twin port, differing only in its AdamW kernel, shows the drift that
    # float rounding alone causes
    twin = PortNVP(trainer.model).to(device) if compare > 5 else None
    updates = [(port, port_opt)]
    if twin is not None:
        updates.append((twin, torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=1e-3, fused=True)))
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=trainer.config.steps, eta_min=1e-5)
                 for _, o in updates]  # the trainer's cosine schedule, step for step
    print("same batches, same start: loss of the fast step | the port")
    losses = []
    for i in range(compare):
        b = [x.to(device) for x in port_batch(frames, batch, generator)]
        losses.append([fast_step(tuple(b)).item(), *(port_update(m, o, *b).item() for m, o in updates)])
        for schedule in schedules:
            schedule.step()
        if i < 5:
            ours, theirs = losses[-1][:2]
            print(f"  step {i + 1}: {ours:.6f} | {theirs:.6f}  (relative difference {abs(ours - theirs) / theirs:.1e})")
    if compare > 5:
        last = losses[-10:]
        ours, theirs, other = (10 * math.log10(4 * len(last) / sum(x[k] for x in last)) for k in range(3))
        print(f"  training PSNR over steps {compare - len(last) + 1}-{compare}: {ours:.3f} | {theirs:.3f} dB "
              f"(the port with a fused AdamW: {other:.3f} dB)")

    def port_full() -> None:
        coords, steps, target = port_batch(frames, batch, generator)
        port_update(port, port_opt, coords.to(device), steps.to(device), target.to(device))

    fast_times, port_times = [], []
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both
        fast_times.append(timed(fast_step, device, repeat))
        port_times.append(timed(port_full, device, repeat))
    fast_s, port_s = statistics.median(fast_times), statistics.median(port_times)
    print(f"fast step {fast_s * 1e3:8.1f} ms  {batch / fast_s:12,.0f} samples/s   (median of {rounds} rounds)")
    print(f"port step {port_s * 1e3:8.1f} ms  {batch / port_s:12,.0f} samples/s")
    ratios = sorted(p / f for f, p in zip(fast_times, port_times))
    print(f"ratio fast / port: {port_s / fast_s:.2f}x  (per round {ratios[0]:.2f}x to {ratios[-1]:.2f}x)")
    print(f"the published schedule, {PUBLISHED_STEPS:,} steps of this step: {PUBLISHED_STEPS * fast_s / 3600:.2f} h")

    model = trainer.model
    coords, steps, target = trainer.sampler(batch)
    latent = model.latent(coords).detach().requires_grad_()
    upstream = torch.randn_like(latent)

    def grids() -> None:
        model.zero_grad(set_to_none=True)
        (model.latent(coords) * upstream).sum().backward()

    decode = model.decoder if trainer._compiled is None else trainer._compiled  # as the step runs it

    def decoder() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(decode(steps, latent), target).backward()

    fast_step()  # leaves every gradient in place for the optimizer alone
    split = {"optimizer": timed(trainer.optimizer.step, device, repeat),
             "sampling": timed(lambda: trainer.sampler(batch), device, repeat),
             "grids (fwd+bwd)": timed(grids, device, repeat),
             "decoder (fwd+bwd)": timed(fast(decoder), device, repeat)}
    print("fast step split: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in split.items()))
    rates = matmul_rates(device)
    floor = decoder_flops(config) * batch / max(rates.values())
    print("matmul rate at the decoder's shapes: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in rates.items()))
    print(f"decoder floor at the best rate: {floor * 1e3:.1f} ms per step -> at most {batch / floor:,.0f} samples/s "
          f"from the decoder alone")
    height, width = args.render_size
    frame = timed(lambda: next(nvpkit.render(trainer.model, video.num_frames, height, width)), device, 1)
    print(f"full-frame inference of one {height}x{width} frame: {frame:.2f} s (chunked, nvpkit.render; after a "
          "warm-up frame)")
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"peak process memory (both variants): {peak:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="pixels per step (default 16384 CPU, 1245184 CUDA)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--downscale", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds of the two variants")
    parser.add_argument("--device", default="all", help="cpu, cuda or all (default)")
    parser.add_argument("--full-size", action="store_true", help="600 frames of 1080p, the published batch")
    parser.add_argument("--compare", type=int, default=5, help="steps of both variants on the same batches")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches")
    parser.add_argument("--compile", action="store_true", help="the fast step with TrainConfig.compile")
    parser.add_argument("--lookup", default="auto", choices=LOOKUPS,
                        help="2D-grid lookup path of the fast step (auto: sample on the CPU, gather on CUDA)")
    parser.add_argument("--tf32", action="store_true",
                        help="the fast step with TF32 matmuls (CUDA; the port stays float32)")
    parser.add_argument("--render-size", type=lambda t: tuple(int(v) for v in t.split("x")), default=(1080, 1920),
                        metavar="HxW", help="size of the frame whose inference is timed (default 1080x1920)")
    args = parser.parse_args()
    devices = [torch.device("cpu")] if args.device in ("all", "cpu") else []
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if not devices:
        print(f"no device to run on: --device {args.device}, CUDA available: {torch.cuda.is_available()}")
        return
    if args.full_size:
        frames = np.random.default_rng(0).integers(0, 256, (600, 1080, 1920, 3), dtype=np.uint8)
        video = nvpkit.Video(frames, "synthetic 1080p")
        args.batch = args.batch or PUBLISHED_BATCH
    else:
        video = nvpkit.load_video("sample", args.frames, downscale=args.downscale)
    for device in devices:
        run(device, video, args.batch or nvpkit.TrainConfig().batch_for(device), args)


if __name__ == "__main__":
    main()
