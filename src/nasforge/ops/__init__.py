"""Operation registry shared by derived networks and supernets.

Every candidate operation is built by one factory signature, ``(C_in, C_out, stride, affine) ->
nn.Module``, so a supernet's mixed op and the stand-alone network of a chosen architecture are made
of exactly the same modules (and their weights can be copied one to one).
"""

from nasforge.ops.registry import OPS, OpFactory, create_op, list_ops, register_op

__all__ = ["OPS", "OpFactory", "create_op", "list_ops", "register_op"]
