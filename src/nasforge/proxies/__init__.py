"""Zero-cost proxies: score an untrained network in about a second.

=============  ==============  ==========================================================
name           needs           what
=============  ==============  ==========================================================
``synflow``    nothing         sum |theta * dR/dtheta| of the |theta| network, all-ones input
``params``     nothing         parameter count (baseline)
``flops``      nothing         FLOPs of one forward pass (baseline)
``jacob_cov``  images          correlation of the per-image input Jacobians
``naswot``     images          log-determinant of the ReLU activation-pattern kernel
``snip``       images, labels  sum |theta * dL/dtheta|
``grasp``      images, labels  sum -theta * (H g)
``fisher``     images, labels  per-channel Fisher saliency, summed
``grad_norm``  images, labels  sum of per-layer gradient norms
=============  ==============  ==========================================================

"nothing" means the proxy uses only the input *shape*. Use::

    from nasforge.proxies import compute_proxy
    score = compute_proxy("synflow", model, space.example_input(1))
    score = compute_proxy("snip", model, images, labels, seed=0)

:func:`compute_proxy` never changes the model. :mod:`nasforge.proxies.vote` combines proxies
over a set of candidates; :class:`NB201Synflow` computes synflow of NAS-Bench-201 cells without
building networks; the ``"proxy"`` evaluator (:mod:`nasforge.evaluators.proxies`) plugs proxies
into experiments.
"""

# Importing a proxy module registers its proxies (one import per module, sorted).
from nasforge.proxies import activation as activation
from nasforge.proxies import baselines as baselines
from nasforge.proxies import saliency as saliency
from nasforge.proxies import synflow as synflow
from nasforge.proxies.nb201_synflow import NB201Synflow, live_edges
from nasforge.proxies.registry import (
    PROXIES,
    Proxy,
    compute_proxy,
    get_proxy,
    list_proxies,
    register_proxy,
)
from nasforge.proxies.vote import VOTE_METHODS, vote, vote_ranks

__all__ = [
    "PROXIES",
    "VOTE_METHODS",
    "NB201Synflow",
    "Proxy",
    "compute_proxy",
    "get_proxy",
    "list_proxies",
    "live_edges",
    "register_proxy",
    "vote",
    "vote_ranks",
]
