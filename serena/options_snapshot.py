"""An immutable, mapping-like copy of the options taken at the start of a generation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, dict):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    return value


class OptionsSnapshot(Mapping[str, Any]):
    """Read-only options: `snapshot["key"]` or `snapshot.key`; any write raises TypeError."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", MappingProxyType({key: _freeze(value) for key, value in values.items()}))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"options snapshot has no option {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise TypeError(f"options snapshot is read-only: cannot set {key!r}")

    def __delattr__(self, key: str) -> None:
        raise TypeError(f"options snapshot is read-only: cannot delete {key!r}")

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(f"options snapshot is read-only: cannot set {key!r}")

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"options snapshot is read-only: cannot delete {key!r}")

    def __repr__(self) -> str:
        return f"OptionsSnapshot({dict(self._values)!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready copy (tuples become lists)."""
        return json.loads(json.dumps(self._plain(), sort_keys=True))

    def digest(self) -> str:
        """sha256 of the canonical JSON of every value: equal snapshots have equal digests."""
        canonical = json.dumps(self._plain(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _plain(self) -> dict[str, Any]:
        def thaw(value: Any) -> Any:
            if isinstance(value, tuple):
                return [thaw(item) for item in value]
            if isinstance(value, Mapping):
                return {key: thaw(item) for key, item in value.items()}
            return value

        return {key: thaw(value) for key, value in self._values.items()}
