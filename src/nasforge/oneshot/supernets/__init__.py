"""Supernets of the registered spaces, one per file; importing a module registers its builder."""

from nasforge.oneshot.supernets import darts as darts
from nasforge.oneshot.supernets import elastic as elastic
from nasforge.oneshot.supernets import nb201 as nb201
