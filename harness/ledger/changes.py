"""What a milestone changed in its dependencies and in CI, between a base commit and the working tree.

Two diffs, each a pure function over texts plus a thin wrapper that reads the base from git and the head from the
working tree:

- the lock diff: pins added, removed and bumped in requirements.lock, names compared after PEP 503 normalisation
  and each pin keyed by (name, environment marker), so a name pinned once per platform stays two entries; hashes,
  comments and option lines do not count;
- the CI diff: per file of `.github/workflows/`, `.ci/run` and the Makefile, human lines saying what CI now runs
  differently. Workflows are compared as parsed YAML (triggers, permissions, env, concurrency, and per job its
  runner, needs, condition, timeout, matrix and steps matched by name, id, action or position), so reordered keys,
  comments and whitespace are no change; other files are compared line by line, one summary per hunk.

A detail line that starts with spaces continues the one before it (the changed lines of a hunk or of a command).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.errors import LedgerError
from harness.gates.deps import _logical_lines, _strip_comment
from harness.git import GitError, git, ref_exists, show_file

LOCK = "requirements.lock"
CI_PATHS = (".github/workflows", ".ci/run", "Makefile")
YAML_SUFFIXES = (".yml", ".yaml")
SHOWN_LINES = 8  # changed lines shown per hunk or command before "… and K more"
SHOWN_PINS = 6  # pins named per group in LockDiff.describe()
VALUE_WIDTH = 80  # a value wider than this is cut with "…" in a detail line
_MISSING = object()


# ---------------------------------------------------------------- the lock


@dataclass(frozen=True)
class LockDiff:
    """Pins added and removed as (name, version), and bumped as (name, old, new); sorted by normalised name.

    A pin with an environment marker is named `name; marker`.
    """

    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    bumped: tuple[tuple[str, str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.bumped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "added": [{"name": name, "version": version} for name, version in self.added],
            "removed": [{"name": name, "version": version} for name, version in self.removed],
            "bumped": [{"name": name, "old": old, "new": new} for name, old, new in self.bumped],
        }

    def describe(self) -> str:
        """One line: `2 added (a 1.0, b 2.0), 1 bumped (torch 2.12.0 → 2.13.0)`, or `no dependency moved`."""
        if not self.changed:
            return "no dependency moved"
        groups = (
            ("added", [f"{name} {version}" for name, version in self.added]),
            ("removed", [f"{name} {version}" for name, version in self.removed]),
            ("bumped", [f"{name} {old} → {new}" for name, old, new in self.bumped]),
        )
        return ", ".join(f"{len(items)} {verb} ({_capped(items, SHOWN_PINS)})" for verb, items in groups if items)


def parse_lock_pins(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """The pins of a lock text: (normalised name, marker) → (name as written with its marker, version).

    The lines are read as `read_lock` reads them (continuations joined, comments, `--hash` and option lines
    dropped); the version is the `==` pin, or the specifier or URL of a line that is not pinned (the gate reports
    those). Invalid lines are skipped; a (name, marker) pinned twice keeps its first line.
    """
    pins: dict[tuple[str, str], tuple[str, str]] = {}
    for _line_no, raw in _logical_lines(text):
        line = _strip_comment(raw)
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(" ".join(token for token in line.split() if not token.startswith("--hash")))
        except InvalidRequirement:
            continue
        marker = str(requirement.marker) if requirement.marker is not None else ""
        key = (canonicalize_name(requirement.name), marker)
        label = f"{requirement.name}; {marker}" if marker else requirement.name
        pins.setdefault(key, (label, _version_of(requirement)))
    return pins


def diff_locks(base_text: str | None, head_text: str | None) -> LockDiff:
    """What moved from the base lock to the head lock; a missing side is an empty lock."""
    base = parse_lock_pins(base_text or "")
    head = parse_lock_pins(head_text or "")
    added = tuple(head[key] for key in sorted(head.keys() - base.keys()))
    removed = tuple(base[key] for key in sorted(base.keys() - head.keys()))
    bumped = tuple(
        (head[key][0], base[key][1], head[key][1])
        for key in sorted(base.keys() & head.keys())
        if not _same_version(base[key][1], head[key][1])
    )
    return LockDiff(added=added, removed=removed, bumped=bumped)


def lock_diff(repo_root: Path, base: str, lock_rel: str = LOCK) -> LockDiff:
    """The lock diff from `base` (a commit) to the working tree's `lock_rel`; a side without the file is empty."""
    _require_commit(repo_root, base)
    return diff_locks(show_file(repo_root, base, lock_rel), _read_head(repo_root, lock_rel))


def _version_of(requirement: Requirement) -> str:
    if requirement.url:
        return f"@ {requirement.url}"
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "==="):
        return specifiers[0].version
    return str(requirement.specifier) or "(unpinned)"


def _same_version(old: str, new: str) -> bool:
    """Equal as PEP 440 versions (`1.0` is `1.0.0`), else as text."""
    try:
        return Version(old) == Version(new)
    except InvalidVersion:
        return old == new


# ---------------------------------------------------------------- CI


@dataclass(frozen=True)
class WorkflowChange:
    """One CI file that differs: `kind` is added, removed or changed; `details` say what CI now runs differently."""

    path: str
    kind: str
    details: tuple[str, ...]

    @property
    def count(self) -> int:
        """The changes named: details that do not continue the one before (those start with spaces)."""
        return sum(1 for line in self.details if not line.startswith(" "))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "count": self.count, "details": list(self.details)}


@dataclass(frozen=True)
class CiDiff:
    changes: tuple[WorkflowChange, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "changes": [change.to_dict() for change in self.changes]}

    def describe(self) -> str:
        """One line: `2 files changed: .github/workflows/pr.yml (3 changes), .ci/run (added, 1 change)`."""
        if not self.changes:
            return "CI unchanged"
        files = []
        for change in self.changes:
            count = f"{change.count} change{'' if change.count == 1 else 's'}"
            files.append(f"{change.path} ({count if change.kind == 'changed' else f'{change.kind}, {count}'})")
        return f"{len(files)} file{'' if len(files) == 1 else 's'} changed: {', '.join(files)}"


def diff_workflow_texts(path: str, base_text: str | None, head_text: str | None) -> WorkflowChange | None:
    """What changed in one CI file from `base_text` to `head_text` (None: the file is absent); None when nothing did.

    A `.yml`/`.yaml` file is compared as parsed data; a side that does not parse gets a line naming the error and
    the file is then compared line by line. Any other file is compared line by line.
    """
    if base_text == head_text:
        return None
    kind = "added" if base_text is None else "removed" if head_text is None else "changed"
    if path.endswith(YAML_SUFFIXES):
        details = _yaml_details(base_text, head_text)
    else:
        details = _text_details(base_text or "", head_text or "")
    return WorkflowChange(path=path, kind=kind, details=tuple(details)) if details or kind != "changed" else None


def ci_diff(repo_root: Path, base: str, paths: Sequence[str] = CI_PATHS) -> CiDiff:
    """The CI diff from `base` (a commit) to the working tree over `paths` (files or folders, relative to the root).

    A folder is expanded on both sides: at the base with `git ls-tree`, in the working tree with the tracked and
    untracked files git does not ignore.
    """
    _require_commit(repo_root, base)
    files: set[str] = set()
    for path in paths:
        files.update(_base_files(repo_root, base, path))
        files.update(_head_files(repo_root, path))
    changes = (
        diff_workflow_texts(rel, show_file(repo_root, base, rel), _read_head(repo_root, rel)) for rel in sorted(files)
    )
    return CiDiff(changes=tuple(change for change in changes if change is not None))


def _base_files(repo_root: Path, base: str, path: str) -> list[str]:
    output = git(repo_root, "ls-tree", "-r", "-z", "--name-only", base, "--", path)
    return [name for name in output.split("\0") if name]


def _head_files(repo_root: Path, path: str) -> list[str]:
    output = git(repo_root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", path)
    return [name for name in output.split("\0") if name and (repo_root / name).is_file()]


# ---------------------------------------------------------------- workflows as data


def _yaml_details(base_text: str | None, head_text: str | None) -> list[str]:
    details: list[str] = []
    documents = []
    for side, text in (("base", base_text), ("head", head_text)):
        document, problem = _load_workflow(text)
        if problem:
            details.append(f"{side}: {problem}")
        documents.append(document)
    base, head = documents
    if base is None or head is None:
        return details + _text_details(base_text or "", head_text or "")
    return details + _workflow_details(base, head)


def _load_workflow(text: str | None) -> tuple[dict[Any, Any] | None, str | None]:
    """The parsed workflow (`on` under its own name), or None and one line saying why it is not one."""
    if text is None:
        return {}, None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"does not parse as YAML ({_yaml_error(exc)})"
    if document is None:
        return {}, None
    if not isinstance(document, dict):
        return None, f"is not a YAML mapping but a {type(document).__name__}"
    if any(key is True for key in document):  # YAML 1.1 reads the key `on` as the boolean true
        document = {("on" if key is True else key): value for key, value in document.items()}
    return document, None


def _workflow_details(base: dict[Any, Any], head: dict[Any, Any]) -> list[str]:
    details: list[str] = []
    for key in _keys(base, head):
        if key == "jobs":
            continue
        old, new = base.get(key, _MISSING), head.get(key, _MISSING)
        if key == "on":
            old, new = _triggers(old), _triggers(new)
        details += _value_diff(str(key), "", old, new)
    old_jobs, new_jobs = base.get("jobs"), head.get("jobs")
    if isinstance(old_jobs, dict | None) and isinstance(new_jobs, dict | None):
        old_jobs, new_jobs = old_jobs or {}, new_jobs or {}
        for job in _keys(old_jobs, new_jobs):
            details += _job_details(str(job), old_jobs.get(job, _MISSING), new_jobs.get(job, _MISSING))
    else:
        details += _value_diff("jobs", "", base.get("jobs", _MISSING), head.get("jobs", _MISSING))
    return details


def _triggers(value: Any) -> Any:
    """`on: push` and `on: [push]` as `{push: None}`, so spelling the same triggers differently is no change."""
    if isinstance(value, str):
        return {value: None}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return dict.fromkeys(value)
    return value


def _job_details(job: str, old: Any, new: Any) -> list[str]:
    scope = f'job "{job}"'
    if old == new:
        return []
    if old is _MISSING:
        return [f"{scope} added ({_job_summary(new)})"]
    if new is _MISSING:
        return [f"{scope} removed"]
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return _value_diff(scope, "", old, new)
    details: list[str] = []
    for key in _keys(old, new):
        if key != "steps":
            details += _field_diff(scope, str(key), old.get(key, _MISSING), new.get(key, _MISSING))
    old_steps, new_steps = old.get("steps"), new.get("steps")
    if isinstance(old_steps, list | None) and isinstance(new_steps, list | None):
        details += _steps_details(scope, old_steps or [], new_steps or [])
    else:
        details += _value_diff(scope, "steps", old.get("steps", _MISSING), new.get("steps", _MISSING))
    return details


def _job_summary(job: Any) -> str:
    if isinstance(job, dict) and "uses" in job:
        return f"uses {job['uses']}"
    steps = job.get("steps") if isinstance(job, dict) else None
    count = len(steps) if isinstance(steps, list) else 0
    runs_on = f"runs-on {_brief(job['runs-on'])}, " if isinstance(job, dict) and "runs-on" in job else ""
    return f"{runs_on}{count} step{'' if count == 1 else 's'}"


def _steps_details(scope: str, old: list[Any], new: list[Any]) -> list[str]:
    old_keyed, new_keyed = _keyed_steps(old), _keyed_steps(new)
    details: list[str] = []
    for key in _keys(old_keyed, new_keyed):
        label = f"{scope}: {_step_label(key)}"
        before, after = old_keyed.get(key, _MISSING), new_keyed.get(key, _MISSING)
        if before == after:
            continue
        if before is _MISSING:
            details.append(f"{label} added{_step_summary(after)}")
        elif after is _MISSING:
            details.append(f"{label} removed")
        elif isinstance(before, dict) and isinstance(after, dict):
            for field in _keys(before, after):
                details += _field_diff(label, str(field), before.get(field, _MISSING), after.get(field, _MISSING), " ")
        else:
            details += _value_diff(label, "", before, after)
    common = [key for key in old_keyed if key in new_keyed]
    if common != [key for key in new_keyed if key in old_keyed]:
        details.append(f"{scope}: steps run in a new order")
    return details


def _keyed_steps(steps: list[Any]) -> dict[tuple[str, str, int], Any]:
    """Steps keyed by name, else id, else action (without its ref), else position; a repeated key is counted."""
    keyed: dict[tuple[str, str, int], Any] = {}
    for position, step in enumerate(steps, start=1):
        step_map = step if isinstance(step, dict) else {}
        if step_map.get("name"):
            kind, value = "name", str(step_map["name"])
        elif step_map.get("id"):
            kind, value = "id", str(step_map["id"])
        elif step_map.get("uses"):
            kind, value = "uses", _action(str(step_map["uses"]))[0]
        else:
            kind, value = "position", str(position)
        occurrence = 1
        while (kind, value, occurrence) in keyed:
            occurrence += 1
        keyed[(kind, value, occurrence)] = step
    return keyed


def _step_label(key: tuple[str, str, int]) -> str:
    kind, value, occurrence = key
    label = {"name": f'step "{value}"', "id": f'step id "{value}"', "uses": f'step uses "{value}"'}.get(
        kind, f"step #{value}"
    )
    return label if occurrence == 1 else f"{label} (occurrence {occurrence})"


def _step_summary(step: Any) -> str:
    if isinstance(step, dict) and "run" in step:
        return f" (run: {_brief(step['run'])})"
    if isinstance(step, dict) and "uses" in step:
        return f" (uses {step['uses']})"
    return ""


def _field_diff(label: str, field: str, old: Any, new: Any, sep: str = ": ") -> list[str]:
    """One field of a job or a step: `run` read as a command, a re-pinned `uses` as such, anything else as data."""
    if old == new:
        return []
    if field == "run" and isinstance(old, str) and isinstance(new, str):
        return _command_details(label, old, new)
    if field == "uses" and isinstance(old, str) and isinstance(new, str):
        (old_action, old_ref), (new_action, new_ref) = _action(old), _action(new)
        if old_action == new_action:
            return [f"{label} action {new_action} pinned to {new_ref or '(no ref)'} (was {old_ref or '(no ref)'})"]
    return _value_diff(label, "command" if field == "run" else field, old, new, sep)


def _command_details(label: str, old: str, new: str) -> list[str]:
    """A one-line command as `old → new` in full; a longer one as +N −M lines and the changed lines."""
    old_lines, new_lines = old.strip().splitlines(), new.strip().splitlines()
    if len(old_lines) <= 1 and len(new_lines) <= 1:
        return [f"{label} command changed: {old.strip() or '(empty)'} → {new.strip() or '(empty)'}"]
    opcodes = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
    return [f"{label} command changed: {_hunk_counts(opcodes)}", *_hunk_lines(old_lines, new_lines, opcodes)]


def _action(uses: str) -> tuple[str, str]:
    action, _, ref = uses.partition("@")
    return action, ref


def _value_diff(scope: str, path: str, old: Any, new: Any, sep: str = ": ") -> list[str]:
    """Lines for what differs between two parsed values; mappings are walked key by key, anything else is whole.

    A line reads `scope<sep>path changed: old → new` (`sep` is a space after a step, whose fields read as a phrase).
    """
    if old == new:
        return []
    where = f"{scope}{sep}{path}" if path else scope
    if old is _MISSING:
        return [f"{where} added" + ("" if new is None else f": {_brief(new)}")]
    if new is _MISSING:
        return [f"{where} removed"]
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in _keys(old, new):
            lines += _value_diff(scope, f"{path} {key}".strip(), old.get(key, _MISSING), new.get(key, _MISSING), sep)
        return lines
    before, after = _brief(old), _brief(new)
    return [f"{where} changed" + ("" if before == after else f": {before} → {after}")]


def _keys(old: dict[Any, Any], new: dict[Any, Any]) -> list[Any]:
    """The keys of both, in the head's order, then those only the base has."""
    return [*new, *(key for key in old if key not in new)]


def _brief(value: Any) -> str:
    """A value on one line (the lines of a text joined with `; `), cut to VALUE_WIDTH characters."""
    if value is None:
        return "(empty)"
    if isinstance(value, str):
        text = "; ".join(" ".join(line.split()) for line in value.splitlines() if line.strip()) or '""'
    else:
        text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _yaml_error(exc: yaml.YAMLError) -> str:
    """The parser's complaint on one line, with where it is: `line 3, column 7: mapping values are not allowed here`."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f"{exc.context}, " if exc.context else ""
        return " ".join(f"{where}{context}{exc.problem}".split())
    return " ".join(str(exc).split())


# ---------------------------------------------------------------- files as lines


def _text_details(base_text: str, head_text: str) -> list[str]:
    """One line per hunk (`at line 12: +2 −1 lines`, the head's line), then its first changed lines, capped."""
    old, new = base_text.splitlines(), head_text.splitlines()
    details: list[str] = []
    for group in difflib.SequenceMatcher(None, old, new, autojunk=False).get_grouped_opcodes(3):
        changes = [opcode for opcode in group if opcode[0] != "equal"]
        details.append(f"at line {changes[0][3] + 1}: {_hunk_counts(changes)}")
        details += _hunk_lines(old, new, changes)
    return details


def _hunk_counts(opcodes: Sequence[tuple[str, int, int, int, int]]) -> str:
    added = sum(j2 - j1 for tag, _, _, j1, j2 in opcodes if tag != "equal")
    removed = sum(i2 - i1 for tag, i1, i2, _, _ in opcodes if tag != "equal")
    return f"+{added} −{removed} line{'' if added + removed == 1 else 's'}"


def _hunk_lines(old: list[str], new: list[str], opcodes: Sequence[tuple[str, int, int, int, int]]) -> list[str]:
    """The removed (-) and added (+) lines in file order, indented, the first SHOWN_LINES then how many more."""
    lines: list[str] = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag != "equal":
            lines += [f"-{line}" for line in old[i1:i2]] + [f"+{line}" for line in new[j1:j2]]
    shown = [f"    {line.rstrip()}" for line in lines[:SHOWN_LINES]]
    if len(lines) > SHOWN_LINES:
        shown.append(f"    … and {len(lines) - SHOWN_LINES} more")
    return shown


def _capped(items: Sequence[str], limit: int) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join([*items[:limit], f"… and {len(items) - limit} more"])


# ---------------------------------------------------------------- reading


def _require_commit(repo_root: Path, base: str) -> None:
    if not ref_exists(repo_root, base):
        raise GitError(f"{base!r} is not a commit in {repo_root} (fetch it, or give a full history)")


def _read_head(repo_root: Path, rel: str) -> str | None:
    path = repo_root / rel
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read it ({exc.strerror})") from None
