"""The one-shot methods by name: ``create_search("darts", supernet, splits, epochs=3, ...)``."""

from __future__ import annotations

from typing import Any

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError, unknown
from nasforge.oneshot.darts import Darts
from nasforge.oneshot.enas import Enas
from nasforge.oneshot.gdas import Gdas
from nasforge.oneshot.ofa import Ofa
from nasforge.oneshot.pcdarts import PcDarts
from nasforge.oneshot.search import OneShotSearch
from nasforge.oneshot.spos import Spos
from nasforge.supernet.base import Supernet

# name -> (class, fixed options, one-line description)
METHODS: dict[str, tuple[type[OneShotSearch], dict[str, Any], str]] = {
    "darts": (Darts, {"order": 1}, "DARTS, first order (Liu et al., ICLR 2019)"),
    "darts2": (Darts, {"order": 2}, "DARTS, second order (unrolled, finite-difference Hessian)"),
    "pcdarts": (PcDarts, {"order": 1}, "PC-DARTS, partial channels + edge normalization (Xu et al., "
                "ICLR 2020)"),
    "gdas": (Gdas, {}, "GDAS, hard Gumbel-softmax sampling (Dong & Yang, CVPR 2019)"),
    "spos": (Spos, {}, "SPOS, uniform single path + evolution (Guo et al., ECCV 2020)"),
    "enas": (Enas, {}, "ENAS, REINFORCE controller + shared weights (Pham et al., ICML 2018)"),
    "ofa": (Ofa, {}, "once-for-all, progressive shrinking + sandwich rule (Cai et al., ICLR 2020)"),
}


def list_methods() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: doc for name, (_, _, doc) in METHODS.items()}


def create_search(
    method: str, supernet: Supernet, splits: DataSplits, **options: Any
) -> OneShotSearch:
    """A one-shot search of ``method`` over ``supernet``; ``options`` are config fields and the
    keyword arguments of :class:`~nasforge.oneshot.search.OneShotSearch` (``device``,
    ``checkpoint``, ``data_spec``)."""
    if method not in METHODS:
        raise unknown("one-shot method", method, METHODS)
    cls, fixed, _ = METHODS[method]
    for key, value in fixed.items():
        if key in options and options[key] != value:
            raise ConfigError(
                f"method {method!r} means {key}={value!r}; got {key}={options[key]!r} (pick the method "
                f"that fits: {', '.join(n for n, (c, _, _) in METHODS.items() if c is cls)})"
            )
    return cls(supernet, splits, **{**options, **fixed})


__all__ = ["METHODS", "create_search", "list_methods"]
