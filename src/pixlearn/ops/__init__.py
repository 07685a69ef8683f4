"""Classical image operations, features and recipes: numpy in, numpy out (no torch).

Importing this package registers every op; see :func:`list_ops` and :func:`get_op`.
"""

from pixlearn.ops._registry import OpSpec, get_op, list_ops, register_op

__all__ = ["OpSpec", "get_op", "list_ops", "register_op"]
