"""One registry for every pluggable, versioned thing: problem families, curriculum strategies, band filters, online
samplers, verifiers, ablation arms.

An entry has a name (what a config says), a version (bumped whenever its behaviour changes) and a description.
`method(name)` is the versioned id, `<name>_<version>`, that lands in the `method`/`filter`/`strategy` column of
every row the entry produced, so rows made by an older rule stay distinguishable. An unknown name is a
`ConfigError` that lists the close matches ("did you mean"). Registering a name twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from engines.errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A registered item with its name, version and one-line description."""

    name: str
    version: str
    item: T
    description: str = ""

    @property
    def method(self) -> str:
        """The versioned id written into the rows this entry produced."""
        return f"{self.name}_{self.version}"


class Registry(Generic[T]):
    """Named, versioned items of one kind. With `base`, only subclasses of it may be registered."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, version: str = "v1", description: str = "") -> Callable[[T], T]:
        """A decorator registering the class or function it decorates under `name`."""

        def decorator(item: T) -> T:
            self.add(name, item, version=version, description=description)
            return item

        return decorator

    def add(self, name: str, item: T, *, version: str = "v1", description: str = "") -> T:
        """Register `item` under `name`; a duplicate name or a class outside `base` is refused."""
        base = self.base
        if base is not None and not (isinstance(item, type) and issubclass(item, base)):
            raise TypeError(f"{self.kind} {name!r}: {item!r} is not a subclass of {base.__name__}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered by {self._entries[name].item!r}")
        self._entries[name] = Entry(name, version, item, description)
        return item

    def entry(self, name: str) -> Entry[T]:
        """The entry of `name`; an unknown name is a `ConfigError` with close matches."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r};" + did_you_mean(name, self._entries)) from None

    def get(self, name: str) -> T:
        """The registered item (class or function) of `name`."""
        return self.entry(name).item

    def method(self, name: str) -> str:
        """The versioned id of `name` (`<name>_<version>`)."""
        return self.entry(name).method

    def check(self, name: str) -> str:
        """`name` when registered (for config validators: the error is a `ValueError` with close matches)."""
        self.entry(name)
        return name

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
