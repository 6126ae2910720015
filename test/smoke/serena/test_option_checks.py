"""Option choices checked when they are made: models that are not there, folders a file is in the way of."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from serena import models, shared
from serena.errors import InputError, OptionError
from serena.filenames import check_folder, surrogate_problem, text_problem
from serena.option_checks import check_choice, folder_problem, make_folder


def test_folder_problem_names_what_is_in_the_way(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "file").write_text("x")
    assert folder_problem(data_dir, "new/deeper") is None
    assert folder_problem(data_dir, "file") == "a file of that name is in the way"
    assert folder_problem(data_dir, "file/a/b") == "the file 'file' is in the way"
    assert folder_problem(data_dir / "file", "a") == "the data dir is not a folder"


def test_folder_problem_reports_an_os_error_in_one_line(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def too_long(self: Path) -> bool:
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    monkeypatch.setattr(Path, "is_dir", too_long)
    assert folder_problem(data_dir, "x") == "the folder name is too long for the file system"

    def denied(self: Path) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "is_dir", denied)
    assert folder_problem(data_dir, "x") == "Permission denied"


def test_make_folder_turns_only_the_options_problems_into_input_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("x")
    for folder in (tmp_path / "file", tmp_path / "file" / "below", tmp_path / ("n" * 300)):
        with pytest.raises(InputError) as caught:
            make_folder(folder, "outdir_txt2img")
        assert caught.value.field == "outdir_txt2img"

    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(OSError, match="No space left") as caught_os:
        make_folder(tmp_path / "new", "outdir_txt2img")
    assert not isinstance(caught_os.value, InputError)  # a full disk is the machine's failure, not bad input


def test_check_choice_reports_an_unreadable_model_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(models, "find_model", unreadable)
    with pytest.raises(OptionError, match="'sd_model_checkpoint': 'x': Permission denied"):
        check_choice("sd_model_checkpoint", "x", shared.cmd_opts)
    check_choice("jpeg_quality", 90, shared.cmd_opts)  # no check beyond its type


def test_text_and_folder_checks() -> None:
    assert text_problem("fine 日本") is None and surrogate_problem("a\x00b") is None
    assert text_problem("a\x00b") == "holds a NUL character at position 1"
    assert "U+DC80) at position 2" in str(text_problem("ab\udc80"))
    assert check_folder("a/" + "é" * 127) is None  # 254 bytes
    assert "256 bytes" in str(check_folder("a\\" + "é" * 128))
    assert "1025 bytes long" in str(check_folder("a/" * 512 + "b"))
