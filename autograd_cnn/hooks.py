"""The handle that every ``register_*hook`` returns (tensors, modules, the backward walk)."""
from __future__ import annotations

from collections.abc import Callable


class RemovableHandle:
    """What registering a hook returns: ``handle.remove()`` takes the hook off again (twice is
    harmless); also a ``with`` block that removes the hook at its end.

    Every hook collection is a dict from handle to hook: the handle is the key, so one function
    registered twice is two hooks, each removed by its own handle, and the dict keeps the
    order of registration (the order the hooks run in).
    """

    __slots__ = ("_hooks",)

    def __init__(self, hooks: dict, fn: Callable) -> None:
        self._hooks = hooks
        hooks[self] = fn

    def remove(self) -> None:
        """Take the hook off; removing it twice is harmless."""
        self._hooks.pop(self, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
