"""Nightscout's permissions: Apache Shiro-style strings such as ``api:treatments:read``.

A granted permission is a ``:``-separated list of parts, each ``*`` or a ``,``-separated set
of names; it implies a wanted permission when every part matches, and a granted permission
shorter than the wanted one implies everything below it (``api`` implies
``api:treatments:read``), as the ``shiro-trie`` package Nightscout uses decides.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CRUD", "api_permissions", "permission", "permits"]

# API v3's letters for what a credential may do with a collection (``/api/v3/status``).
CRUD = (("c", "create"), ("r", "read"), ("u", "update"), ("d", "delete"))


def permission(collection: str, action: str) -> str:
    """The permission API v3 demands to ``action`` (create/read/update/delete) a collection."""
    return f"api:{collection}:{action}"


def permits(granted: Iterable[str], wanted: str) -> bool:
    """Whether any of the ``granted`` permissions implies ``wanted``."""
    want = wanted.split(":")
    return any(_implies(g.split(":"), want) for g in granted)


def _implies(granted: list[str], wanted: list[str]) -> bool:
    for i, part in enumerate(wanted):
        if i >= len(granted):
            return True
        if granted[i] != "*" and part not in granted[i].split(","):
            return False
    return all(part == "*" for part in granted[len(wanted):])


def api_permissions(granted: Iterable[str], collections: Iterable[str]) -> dict[str, str]:
    """Each collection's ``crud`` letters the ``granted`` permissions allow (none: left out)."""
    granted = list(granted)
    letters = {col: "".join(letter for letter, action in CRUD
                            if permits(granted, permission(col, action)))
               for col in collections}
    return {col: crud for col, crud in letters.items() if crud}
