"""The immutable options snapshot: mapping-like reads, every write refused."""

from __future__ import annotations

import pytest

from serena.options import Options
from serena.options_snapshot import OptionsSnapshot


def test_snapshot_reads_like_a_mapping_and_by_attribute() -> None:
    opts = Options()
    opts.set("eta_ddim", 0.5)
    snapshot = opts.snapshot()
    assert snapshot["eta_ddim"] == 0.5 and snapshot.eta_ddim == 0.5
    assert set(snapshot) == set(opts.data) and len(snapshot) == len(opts.data)
    assert dict(snapshot)["samples_format"] == "png"


def test_snapshot_does_not_follow_later_changes() -> None:
    opts = Options()
    snapshot = opts.snapshot()
    opts.set("eta_ddim", 0.5)
    assert snapshot.eta_ddim == 0.0


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.__setitem__("eta_ddim", 1.0),
        lambda s: s.__delitem__("eta_ddim"),
        lambda s: setattr(s, "eta_ddim", 1.0),
        lambda s: delattr(s, "eta_ddim"),
        lambda s: setattr(s, "_values", {}),
    ],
)
def test_every_write_raises(write) -> None:
    snapshot = Options().snapshot()
    with pytest.raises(TypeError, match="read-only"):
        write(snapshot)
    assert snapshot.eta_ddim == 0.0


def test_nested_values_are_frozen_too() -> None:
    snapshot = OptionsSnapshot({"names": ["a", "b"], "table": {"x": [1]}})
    assert snapshot["names"] == ("a", "b")
    with pytest.raises(TypeError):
        snapshot["table"]["x"] = 2  # type: ignore[index]
    assert snapshot.to_dict() == {"names": ["a", "b"], "table": {"x": [1]}}


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nope"):
        _ = Options().snapshot().nope
    with pytest.raises(KeyError):
        _ = Options().snapshot()["nope"]


def test_digest_is_equal_for_equal_values_and_differs_otherwise() -> None:
    first, second = Options(), Options()
    assert first.snapshot().digest() == second.snapshot().digest()
    second.set("eta_ddim", 0.1)
    assert first.snapshot().digest() != second.snapshot().digest()
    assert "OptionsSnapshot(" in repr(first.snapshot())
