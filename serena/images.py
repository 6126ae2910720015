"""Saving generated images by the file-name pattern, atomically, with infotext embedded; reading infotext back."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from serena import script_callbacks
from serena.errors import InputFileError
from serena.fileio import atomic_write_bytes
from serena.filenames import expand_pattern, filename_values

if TYPE_CHECKING:
    from PIL.Image import Image

    from serena.options_snapshot import OptionsSnapshot
    from serena.processing import StableDiffusionProcessing

log = logging.getLogger("serena")

EXIF_IFD = 0x8769
EXIF_USER_COMMENT = 0x9286
# EXIF UserComment's 8-byte character-code prefixes (an undefined prefix, all NULs, is read as UTF-8)
USER_COMMENT_CODECS = {b"UNICODE\0": "utf-16-be", b"ASCII\0\0\0": "ascii", b"\0" * 8: "utf-8"}
_NUMBERED = re.compile(r"^(\d{5,})(?=[-.]|$)")
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
# File systems cap a name at 255 bytes; keep room for ".webp" and a "-NN" clash suffix.
MAX_BASENAME_BYTES = 255 - len(".webp") - len("-99")
# JPEG keeps EXIF in one segment of at most 64 KiB.
MAX_JPEG_EXIF_BYTES = 65533


def next_number(folder: Path) -> int:
    """One more than the highest running number among the folder's files (0 for an empty folder)."""
    highest = -1
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _NUMBERED.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def encode_png(image: Image, infotext: str | None) -> bytes:
    """PNG bytes with the infotext in their `parameters` text chunk, where web-UI clients read it back."""
    from PIL.PngImagePlugin import PngInfo

    pnginfo = PngInfo()
    if infotext is not None:
        pnginfo.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=pnginfo)
    return buffer.getvalue()


def _encode(image: Image, fmt: str, infotext: str | None, quality: int) -> bytes:
    from PIL import Image as PILImage

    if fmt == "png":
        return encode_png(image, infotext)
    exif = PILImage.Exif()
    if infotext is not None:
        exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = b"UNICODE\0" + infotext.encode("utf-16-be")
    exif_bytes = exif.tobytes()
    if fmt == "jpg" and len(exif_bytes) > MAX_JPEG_EXIF_BYTES:
        log.warning("infotext of %d characters does not fit in JPEG EXIF; image saved without it", len(infotext or ""))
        exif_bytes = PILImage.Exif().tobytes()
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, PIL_FORMATS[fmt], quality=quality, exif=exif_bytes)
    return buffer.getvalue()


def save_image(
    image: Image,
    folder: Path,
    p: StableDiffusionProcessing,
    index: int,
    infotext: str,
    snapshot: OptionsSnapshot,
) -> Path:
    """Write image `index` of the run into `folder` by the snapshot's pattern and format; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    fmt = snapshot["samples_format"]
    basename = expand_pattern(snapshot["samples_filename_pattern"], filename_values(p, index))
    if snapshot["save_images_add_number"]:
        number = f"{next_number(folder):05}"
        basename = f"{number}-{basename}" if basename else number
    basename = _fit_bytes(basename, MAX_BASENAME_BYTES) or "image"
    pnginfo = {"parameters": infotext} if snapshot["save_infotext"] else {}
    params = script_callbacks.ImageSaveParams(image, p, str(folder / f"{basename}.{fmt}"), pnginfo)
    p.callback_errors += script_callbacks.run_callbacks("before_image_saved", params)
    path = _free_path(Path(params.filename))
    data = _encode(params.image, fmt, params.pnginfo.get("parameters"), snapshot["jpeg_quality"])
    atomic_write_bytes(path, data)
    params.filename = str(path)
    p.callback_errors += script_callbacks.run_callbacks("image_saved", params)
    return path


def _fit_bytes(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").strip(" .")


def _free_path(path: Path) -> Path:
    """`path`, or `name-1.ext`, `name-2.ext`, … when it is taken: saving never overwrites an earlier image."""
    candidate, counter = path, 0
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
    return candidate


def read_infotext(path: Path) -> str | None:
    """The infotext embedded in a saved image, or None; InputFileError for a missing or undecodable file."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = Path(path)
    try:
        with PILImage.open(path) as image:
            image.load()
            if "parameters" in image.info:
                return str(image.info["parameters"])
            comment = exif_user_comment(image)
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None
    return comment or None


def exif_user_comment(image: Image) -> str:
    """The EXIF UserComment (where JPEG and WEBP keep infotext) decoded by its character-code prefix (UNICODE,
    ASCII or undefined; without one the whole value is UTF-8), trailing NULs dropped; "" when there is none or the
    EXIF cannot be read."""
    try:
        comment = image.getexif().get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT)
    except Exception:  # noqa: BLE001 - broken EXIF in an otherwise readable image only means no infotext there
        return ""
    if isinstance(comment, str):
        return comment.rstrip("\0")
    if not isinstance(comment, bytes):
        return ""
    codec = USER_COMMENT_CODECS.get(comment[:8])
    if codec is None:  # no character-code prefix: the whole value is the text
        return comment.decode("utf-8", errors="replace").rstrip("\0")
    return comment[8:].decode(codec, errors="replace").rstrip("\0")


def load_image(path: Path, *, mask: bool = False) -> Image:
    """An RGB image from disk; InputFileError naming the file when it is missing, truncated or not an image. A mask
    keeps its transparency (RGBA) when it has any, else becomes luminance (L)."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = Path(path)
    try:
        with PILImage.open(path) as image:
            image.load()
            if not mask:
                return image.convert("RGB")
            transparent = "A" in image.getbands() or "transparency" in image.info
            return image.convert("RGBA" if transparent else "L")
    except FileNotFoundError:
        raise InputFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None
