"""Which golden cases a run covers: id patterns (fnmatch) and a shard k/N, as given on the command line."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.golden.cases import Case


@dataclass(frozen=True)
class Selection:
    """Which cases a run covers: id patterns (fnmatch) and a shard k/N; a merged report counts its shards."""

    patterns: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    merged_from: int | None = None  # set on a report merged from this many shard reports

    @property
    def is_full(self) -> bool:
        return not self.patterns and self.shard is None

    def matches_id(self, case_id: str) -> bool:
        return not self.patterns or any(fnmatch.fnmatchcase(case_id, p) for p in self.patterns)

    def apply(self, cases: Sequence[Case]) -> list[Case]:
        chosen = [case for case in cases if self.matches_id(case.id)]
        if self.shard is not None:
            index, total = self.shard
            chosen = [case for position, case in enumerate(chosen) if position % total == index - 1]
        return chosen

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"patterns": list(self.patterns), "shard": list(self.shard) if self.shard else None}
        if self.merged_from is not None:
            document["merged_from"] = self.merged_from
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Selection:
        shard = document.get("shard")
        return cls(
            patterns=tuple(document.get("patterns") or ()),
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            merged_from=document.get("merged_from"),
        )


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard k/N` as (k, N); ConfigError naming the value unless 1 <= k <= N."""
    if text is None:
        return None
    index, sep, total = text.partition("/")
    try:
        k, n = int(index), int(total)
    except ValueError:
        raise ConfigError(f"--shard expects k/N, got {text!r}") from None
    if not sep or n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard expects k/N with 1 <= k <= N, got {text!r}")
    return k, n
