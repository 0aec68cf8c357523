"""``model.pt2``: the trained model as a self-contained PyTorch program (``torch.export``).

``model.pt`` is a checkpoint: weights plus the architecture, rebuilt by nasforge's own classes, so
loading it needs nasforge. TorchScript, the old way to ship a model without its Python code, is in
maintenance mode; ``torch.export`` is its successor: it captures the forward pass as an
:class:`~torch.export.ExportedProgram` (an ATen graph with the weights) that
``torch.export.save`` writes to one ``.pt2`` file. Anyone with PyTorch loads it back with

    import json, torch
    card = {"nasforge/card.json": ""}
    model = torch.export.load("model.pt2", extra_files=card).module()
    logits = model(images)  # (N, C, H, W) pixels scaled to [0, 1]
    print(json.loads(card["nasforge/card.json"])["class_names"])

no nasforge, no network classes. The exported module is the :class:`Deployable` (shape adaptation
and normalization inside, like ``model.onnx``), with a dynamic batch dimension, and the file
carries the :class:`~nasforge.train.deployable.ModelCard` as the JSON extra file
:data:`CARD_FILE`. The program is an inference graph: eval-mode BatchNorm, no dropout; it is not
meant for further training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.train.evaluate import as_logits

log = logging.getLogger("nasforge.export")

#: Name of the extra file inside ``model.pt2`` that holds the model card (JSON).
CARD_FILE = "nasforge/card.json"


def export_program(model: nn.Module, example: torch.Tensor, path: str | Path,
                   card: Mapping[str, Any] | None = None, check: bool = True,
                   atol: float = 1e-4) -> dict[str, float]:
    """Save ``model`` (moved to CPU, eval mode) as a ``torch.export`` program at ``path``.

    ``example`` is a batch of real inputs; the batch dimension stays dynamic (any size >= 1).
    ``card`` (e.g. :meth:`ModelCard.to_dict`) is stored as the extra file :data:`CARD_FILE`.
    With ``check``, the saved file is loaded back and run on ``example`` (and on its first image
    alone, a batch of one); the largest absolute difference from the model's logits must stay
    within ``atol`` (+ 1e-4 relative), else the file is removed and :class:`ConfigError` raised.
    Returns ``{"pt2_max_abs_diff": ...}`` (empty without ``check``).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if example.ndim < 1 or len(example) < 1:
        raise ConfigError(f"the example batch for {str(p)!r} is empty; give at least one input")
    model = _own_storage(model.to("cpu").float().eval())
    example = example.to("cpu").float()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    extra = {CARD_FILE: json.dumps(dict(card or {}), default=str)}
    torch.export.save(program, str(p), extra_files=extra)
    if not check:
        return {}
    loaded, _ = load_program(p)
    diff = 0.0
    bound = atol
    for x in (example, example[:1]):
        with torch.no_grad():
            got = as_logits(loaded(x)).float()
            want = as_logits(model(x)).float()
        if got.shape != want.shape:
            p.unlink(missing_ok=True)
            raise ConfigError(f"the exported program returns shape {list(got.shape)} for input "
                              f"{list(x.shape)}, PyTorch {list(want.shape)}; it was not kept")
        diff = max(diff, float((got - want).abs().max()) if got.numel() else 0.0)
        bound = max(bound, atol + 1e-4 * float(want.abs().max()) if want.numel() else atol)
    if not diff <= bound:
        p.unlink(missing_ok=True)
        raise ConfigError(f"the exported program's outputs differ from PyTorch's by {diff:.3g} "
                          f"(allowed {bound:.3g}); it was not kept")
    return {"pt2_max_abs_diff": diff}


def _own_storage(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose every weight is contiguous in a storage of its own.

    ``torch.export.save`` writes whole storages and counts on a tensor that covers its storage;
    a weight that does not (a channels-last or otherwise strided one, a view into a shared
    buffer) makes it warn and rebuild the storage from the pieces it sees.
    """
    copy = deepcopy(model)
    with torch.no_grad():
        for module in copy.modules():
            for name, param in module.named_parameters(recurse=False):
                owned = param.detach().clone(memory_format=torch.contiguous_format)
                setattr(module, name, nn.Parameter(owned, param.requires_grad))
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None:
                    module._buffers[name] = buf.detach().clone(memory_format=torch.contiguous_format)
    return copy


def load_program(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load ``model.pt2``: ``(module, card)``, the module taking [0, 1] pixels, the card as a
    dict (empty when the file has none). Plain PyTorch does the same (see the module docs)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model file {str(p)!r} does not exist")
    extra = {CARD_FILE: ""}
    try:
        program = torch.export.load(str(p), extra_files=extra)
    except Exception as exc:  # a zip that is not a program, a newer format: say which file
        raise ConfigError(f"{str(p)!r} is not a torch.export program ({type(exc).__name__}: "
                          f"{exc})") from None
    text = extra.get(CARD_FILE) or ""
    card = json.loads(text) if text.strip() else {}
    return program.module(), card


__all__ = ["CARD_FILE", "export_program", "load_program"]
