"""Fresh locks in a forked child for the objects request threads and the metric reader share.

A fork copies a lock as it is: one held by another thread at that moment (a request, the
reader's collection) stays held in the child, whose first use then waits forever. Objects
registered with ``fork_safe`` get new locks (their ``_new_locks()``) in every forked child,
which has a single thread.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

_instances: weakref.WeakSet[Any] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for instance in list(_instances):
        instance._new_locks()


def fork_safe(instance: Any) -> None:
    """Give ``instance`` new locks (its ``_new_locks()``) in every forked child."""
    _instances.add(instance)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_in_child)
