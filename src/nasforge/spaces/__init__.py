"""Concrete search spaces, one per file; importing a module registers its space in ``SPACES``."""

from nasforge.spaces import darts as darts
from nasforge.spaces import detection as detection
from nasforge.spaces import elastic as elastic
from nasforge.spaces import macro as macro
from nasforge.spaces import nb201 as nb201
