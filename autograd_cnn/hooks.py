"""The handle that every ``register_*hook`` returns (tensors, modules, the backward walk)."""
from __future__ import annotations

from collections.abc import Callable


class RemovableHandle:
    """What registering a hook returns: ``handle.remove()`` takes the hook out again (twice is fine)."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
