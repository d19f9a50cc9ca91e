"""Locations by role: an entry point's argument says *what* it points at (the dataset, one model's
folder), and each runner says *where* that is (a local folder, a container mount, an S3 URI).

Argument builders take a location as a plain string (a place) or a ``Ref`` (a role); given only strings
they return plain strings, so a caller with real places gets a ready command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["raw", "dataset", "external", "audit", "model", "evaluation", "evaluations", "report"]


@dataclass(frozen=True)
class Ref:
    """A location by role. ``name`` tells several apart (an external set's name, a model run's folder,
    a raw source's URI); ``path`` is a file or folder inside it."""

    role: Role
    name: str = ""
    path: str = ""

    def at(self, path: str) -> Ref:
        return Ref(self.role, self.name, path)

    @property
    def folder(self) -> Ref:
        return Ref(self.role, self.name)


@dataclass(frozen=True)
class Bound:
    """One argument: ``prefix`` followed by where ``ref`` is (``--data=`` + the dataset's place)."""

    prefix: str
    ref: Ref


Argument = str | Bound
Location = str | Ref
Place = Callable[[Ref], str]


def flag(prefix: str, location: Location) -> Argument:
    """``prefix`` + a place now, or + a role to be placed by the runner."""
    return prefix + location if isinstance(location, str) else Bound(prefix, location)


def refs(arguments: Iterable[Argument]) -> list[Ref]:
    """The locations the arguments name, in order (a runner mounts or resolves exactly these)."""
    return [a.ref for a in arguments if isinstance(a, Bound)]


def render(arguments: Iterable[Argument], place: Place) -> list[str]:
    """The arguments as strings, every role replaced by ``place(ref)``."""
    return [a if isinstance(a, str) else a.prefix + place(a.ref) for a in arguments]


def joined(folder: str, path: str) -> str:
    """``folder/path`` for a ref's inner path (``folder`` alone when there is none)."""
    return f"{folder.rstrip('/')}/{path}" if path else folder
