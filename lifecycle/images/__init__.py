"""The images layer: references, a content-addressed store in OCI image layout, import/export.

Imports only the base modules (``_errors``, ``_files``, ...): the engine and
the command line use it; it knows nothing of containers.
"""

from __future__ import annotations

from lifecycle.images._layers import DEFAULT_MAX_LAYER_BYTES
from lifecycle.images._model import Image, ImageConfig, Layer, chain_ids
from lifecycle.images._reference import DEFAULT_DOMAIN, DEFAULT_TAG, ImageReference
from lifecycle.images._store import ImageStore, Progress

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_MAX_LAYER_BYTES",
    "DEFAULT_TAG",
    "Image",
    "ImageConfig",
    "ImageReference",
    "ImageStore",
    "Layer",
    "Progress",
    "chain_ids",
]
