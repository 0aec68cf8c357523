"""Training throughput of nasforge's Trainer versus a bare PyTorch loop, side by side.

Both train the same network (an NAS-Bench-201 cell network by default) on the same in-memory
Fashion-MNIST subset with the same optimizer (SGD, Nesterov momentum, weight decay), batch size
and precision (bf16 autocast + channels_last on CUDA, fp32 on CPU). The bare loop is the
strictest baseline: its data is pre-converted to normalized float tensors on the device and a
batch is one index gather; it does forward, loss, zero_grad, backward, step and nothing else.
The Trainer additionally converts uint8 batches to float and normalizes them, sets the cosine
learning rate, accumulates loss/accuracy on the device and checks for a non-finite loss.

Runs alternate (trainer, bare, trainer, bare, ...) after one warm-up run of each, and the median
images/s of each is reported, so machine noise hits both alike. Goal: overhead < 5 %.

    python benchmarks/trainer_throughput.py                 # CPU (or CUDA when present)
    python benchmarks/trainer_throughput.py --device cuda --train-size 20000 --json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import nasforge
from nasforge.data import BatchLoader, make_splits
from nasforge.train import Trainer, as_logits
from nasforge.utils.device import resolve_device

DEFAULT_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, epochs: int,
              batch_size: int, lr: float, device: torch.device, amp: bool) -> float:
    """Images/s of a minimal training loop over pre-normalized device tensors."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    model.train()
    n = x_all.shape[0]
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
            if amp:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = F.cross_entropy(as_logits(model(x)), y)
            else:
                loss = F.cross_entropy(as_logits(model(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(device)
    return epochs * n / (time.perf_counter() - t0)


def trainer_run(model: nn.Module, loader: BatchLoader, epochs: int, lr: float,
                device: torch.device) -> float:
    """Images/s of Trainer.fit (wall time of the whole call, no validation)."""
    trainer = Trainer(epochs=epochs, lr=lr, batch_size=loader.batch_size, grad_clip=None)
    sync(device)
    t0 = time.perf_counter()
    trainer.fit(model, loader, None, device=device)
    sync(device)
    return epochs * loader.num_samples / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--arch", default=DEFAULT_ARCH, help="NAS-Bench-201 cell string")
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each loop")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    amp = device.type == "cuda"
    space = nasforge.create_space("nb201")
    arch = space.from_string(args.arch)
    splits = make_splits("fashion_mnist", data_dir=args.data_dir, train_subset=args.train_size,
                         val_subset=16)
    torch.manual_seed(0)
    base = space.build(arch, num_classes=10, in_channels=1, C=args.C, N=args.N).to(device)
    if amp:
        base = base.to(memory_format=torch.channels_last)
    loader = BatchLoader(splits.train, args.batch_size, shuffle=True, device=device)
    info = splits.train.info
    assert info.mean is not None and info.std is not None
    x_all = ((splits.train.images.to(device).float() / 255 - info.mean[0]) / info.std[0])
    if amp:
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    y_all = splits.train.labels.to(device)
    lr = 0.05

    trainer_ips, bare_ips = [], []
    for i in range(args.repeats + 1):  # run 0 is the warm-up of each
        t = trainer_run(copy.deepcopy(base), loader, args.epochs, lr, device)
        b = bare_loop(copy.deepcopy(base), x_all, y_all, args.epochs, args.batch_size, lr, device,
                      amp)
        if i > 0:
            trainer_ips.append(t)
            bare_ips.append(b)
    t_med, b_med = statistics.median(trainer_ips), statistics.median(bare_ips)
    overhead = 100.0 * (b_med / t_med - 1.0)  # extra time per image, in % of the bare loop's
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "model": f"nb201 C={args.C} N={args.N} ({sum(p.numel() for p in base.parameters())} params)",
        "batch_size": args.batch_size,
        "train_size": args.train_size,
        "epochs_per_run": args.epochs,
        "repeats": args.repeats,
        "trainer_images_per_s": round(t_med, 1),
        "bare_images_per_s": round(b_med, 1),
        "trainer_runs": [round(v, 1) for v in trainer_ips],
        "bare_runs": [round(v, 1) for v in bare_ips],
        "overhead_percent": round(overhead, 2),
        "goal_percent": 5.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"device {result['device']}, {result['threads']} threads, {result['model']}, "
              f"batch {args.batch_size}, {args.train_size} images x {args.epochs} epoch(s), "
              f"median of {args.repeats}")
        print(f"  trainer   : {t_med:10.1f} images/s")
        print(f"  bare loop : {b_med:10.1f} images/s")
        print(f"  overhead  : {overhead:+.2f} % (goal < 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
