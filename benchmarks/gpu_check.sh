#!/usr/bin/env bash
# The CUDA check: runs the tests marked `cuda` (bf16 + channels_last training, the training
# evaluator's measurements, latency/memory metrics and the latency table on the GPU, one step of
# each one-shot method, export of a CUDA-trained model checked with onnxruntime on the CPU), then
# prints training throughput (images/s) of one NAS-Bench-201 network in fp32 vs bf16 +
# channels_last. Usage (from the repository root, on a machine with a GPU):
#     bash benchmarks/gpu_check.sh            # PYTHON=path/to/python to choose the interpreter
set -euo pipefail
PY="${PYTHON:-.venv/bin/python}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible: nothing to check')"
"$PY" -m pytest -m cuda -q -p no:cacheprovider tests
"$PY" - <<'PY'
import time
import torch
import nasforge
from nasforge.train import Trainer

space = nasforge.create_space("nb201")
arch = space.sample(0)
gen = torch.Generator().manual_seed(0)
data = [(torch.randn(256, 3, 32, 32, generator=gen).cuda(), torch.randint(0, 10, (256,), generator=gen).cuda())
        for _ in range(20)]
print(f"{torch.cuda.get_device_name()} torch {torch.__version__}; nb201 C=16 N=5, batch 256, 32x32")
for amp, cl in ((False, False), (True, True)):
    rates = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = space.build(arch)
        fit = Trainer(epochs=2, lr=0.05, amp=amp, channels_last=cl).fit(model, data, device="cuda", seed=seed)
        rates.append(fit.images_per_sec)
    name = "bf16 + channels_last" if amp else "fp32"
    print(f"training throughput {name:>21}: median {sorted(rates)[1]:,.0f} images/s (runs: "
          + ", ".join(f"{r:,.0f}" for r in rates) + ")")
PY
