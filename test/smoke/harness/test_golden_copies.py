"""Deliberate copies in the golden harness agree with their originals (diffusers' `# Copied from` + check_copies)."""

from __future__ import annotations

import inspect

import pytest
from support import REPO_ROOT

from harness.golden import ab_worker
from harness.golden.cases import Case, load_cases

SHIPPED_CASES = load_cases(REPO_ROOT / "harness" / "cases")


@pytest.mark.parametrize("case", SHIPPED_CASES, ids=[case.id for case in SHIPPED_CASES])
def test_the_ab_worker_builds_the_same_processing_kwargs(case: Case) -> None:
    from serena import shared

    known = shared.opts.data_labels
    assert set(case.override_settings) <= set(known), "a shipped case overrides an option the runtime lacks"

    assert ab_worker.processing_kwargs(case.params(), known) == case.processing_kwargs()


def test_the_ab_worker_knows_every_generation_field() -> None:
    from harness.golden.cases import GENERATION_FIELDS

    assert tuple(GENERATION_FIELDS) == ab_worker.GENERATION_FIELDS


def test_the_ab_worker_drops_options_the_base_checkout_does_not_know() -> None:
    case = next(case for case in SHIPPED_CASES if case.override_settings)
    params = case.params()
    params["override_settings"] = {**params["override_settings"], "an_option_from_the_future": 1}

    kwargs = ab_worker.processing_kwargs(params, set(case.override_settings))

    assert kwargs["override_settings"] == dict(case.override_settings)


def test_the_copy_is_marked_with_its_original_and_this_test() -> None:
    lines = inspect.getsource(ab_worker).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("def processing_kwargs("))
    marker = " ".join(lines[at - 3 : at])
    assert "Copied from harness.golden.cases.Case.processing_kwargs" in marker
    assert "test/smoke/harness/test_golden_copies.py::test_the_ab_worker_builds_the_same_processing_kwargs" in marker
