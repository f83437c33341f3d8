"""One explicit registry per plugin kind (detectors, writers, colour modes, effects...)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from faceplate.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object map with a clear error that lists valid names.

    Registries are filled at import time by decorators in the defining modules; they hold factories,
    never live state, so they are safe to import on Dask workers.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name → module that registers it when imported

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def lazy(self, name: str, module: str) -> None:
        """Announce ``name`` without importing its (heavy) module: ``get`` imports ``module`` first."""
        self._lazy[name] = module

    def get(self, name: str) -> T:
        if name not in self._items and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
