"""Classical image operations, features and recipes: numpy in, numpy out (no torch).

Importing this package registers every op; see :func:`list_ops` and :func:`get_op`.
OpenCV loads with this package; scikit-image loads inside the ops that use it, dlib inside the face ops.
"""

from pixlearn.ops import (  # noqa: F401  (importing registers the ops)
    adjust,
    color,
    denoise,
    draw,
    edges,
    faces,
    features,
    geometry,
    morphology,
    segment,
    threshold,
)
from pixlearn.ops._registry import OpSpec, get_op, list_ops, register_op
from pixlearn.ops.dtype import to_float, to_uint8

__all__ = ["OpSpec", "get_op", "list_ops", "register_op", "to_float", "to_uint8"]
