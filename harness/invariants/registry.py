"""Reading and validating the invariant registry (`invariants/registry.toml`): schema, ids, surfaces, verifiers."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import InvariantsError

SURFACES = (
    "image-outputs",
    "generation-semantics",
    "file-outputs",
    "api-schema",
    "cli",
    "extensions",
    "options-isolation",
    "runtime-context",
    "packaging",
    "model-integrity",
)
SEVERITIES = ("blocking", "advisory")
VERIFIER_KINDS = ("pytest", "golden", "snapshot")
INVARIANT_ID = re.compile(r"^INV-\d{3}$")
MILESTONE_ID = re.compile(r"^M\d{2}$")
_FIELDS = {"id", "title", "surface", "statement", "severity", "introduced_in", "verified_by"}

VerifierKind = Literal["pytest", "golden", "snapshot"]


@dataclass(frozen=True)
class VerifierRef:
    """`pytest:<node id>`, `golden:<case id or glob>` or `snapshot:<name>`."""

    kind: VerifierKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class Invariant:
    id: str
    title: str
    surface: str
    statement: str
    severity: Literal["blocking", "advisory"]
    introduced_in: str
    verified_by: tuple[VerifierRef, ...]

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"


def parse_verifier(text: str, where: str) -> VerifierRef:
    kind, sep, target = text.partition(":")
    if not sep or kind not in VERIFIER_KINDS or not target.strip():
        raise InvariantsError(
            f"{where}: verifier {text!r} must be one of {', '.join(k + ':<target>' for k in VERIFIER_KINDS)}"
        )
    return VerifierRef(kind, target.strip())  # type: ignore[arg-type]


def load_registry(path: Path) -> list[Invariant]:
    """Every invariant, validated; the first problem is an InvariantsError naming file, invariant and field."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvariantsError(f"{path}: invariant registry not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvariantsError(f"{path}: malformed TOML: {exc}") from None
    extra = sorted(set(document) - {"invariant"})
    if extra:
        raise InvariantsError(f"{path}: unknown top-level key {extra[0]!r}; invariants are [[invariant]] tables")
    invariants: list[Invariant] = []
    seen: set[str] = set()
    for index, table in enumerate(document.get("invariant", [])):
        where = f"{path}: invariant {table.get('id', f'#{index + 1}')!r}"
        unknown = sorted(set(table) - _FIELDS)
        if unknown:
            raise InvariantsError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(sorted(_FIELDS))}")
        for name in sorted(_FIELDS - {"verified_by"}):
            if not isinstance(table.get(name), str) or not table[name].strip():
                raise InvariantsError(f"{where}: field {name!r} must be a non-empty string")
        if not INVARIANT_ID.match(table["id"]):
            raise InvariantsError(f"{where}: field 'id' must look like INV-001, got {table['id']!r}")
        if table["id"] in seen:
            raise InvariantsError(f"{where}: id {table['id']!r} is used twice")
        seen.add(table["id"])
        if table["surface"] not in SURFACES:
            raise InvariantsError(f"{where}: field 'surface' {table['surface']!r} is not one of {', '.join(SURFACES)}")
        if table["severity"] not in SEVERITIES:
            raise InvariantsError(f"{where}: field 'severity' must be blocking or advisory, got {table['severity']!r}")
        if not MILESTONE_ID.match(table["introduced_in"]):
            raise InvariantsError(f"{where}: field 'introduced_in' must be a milestone like M01")
        refs = table.get("verified_by", [])
        if not isinstance(refs, list) or not all(isinstance(ref, str) for ref in refs):
            raise InvariantsError(f"{where}: field 'verified_by' must be a list of strings")
        invariants.append(
            Invariant(
                id=table["id"],
                title=table["title"],
                surface=table["surface"],
                statement=table["statement"].strip(),
                severity=table["severity"],
                introduced_in=table["introduced_in"],
                verified_by=tuple(parse_verifier(ref, where) for ref in refs),
            )
        )
    if not invariants:
        raise InvariantsError(f"{path}: no invariants declared")
    return invariants
