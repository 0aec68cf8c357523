"""Moved to :mod:`nasforge.supernet` (one module per space); these paths stay importable."""

from nasforge.oneshot.supernets import darts as darts
from nasforge.oneshot.supernets import elastic as elastic
from nasforge.oneshot.supernets import nb201 as nb201
