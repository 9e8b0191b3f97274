"""Check an uploaded picture and turn it into a small, metadata-free square PNG."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from userdesk.errors import InvalidInput

AVATAR_SIZE = 256
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP"})
# Far above any real photo's need and far below what could exhaust memory when decoded.
MAX_PIXELS = 40_000_000


def normalise_avatar(raw: bytes) -> bytes:
    """Decode, refuse what is not a plain PNG/JPEG/GIF/WebP picture, crop to a centred square,
    resize to 256x256 and re-encode as PNG (which drops EXIF and any trailing payload)."""
    if not raw:
        raise InvalidInput.one("image", "required", "is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                if image.format not in ACCEPTED_FORMATS:
                    raise InvalidInput.one(
                        "image", "image_format", "must be a PNG, JPEG, GIF or WebP picture"
                    )
                if image.width * image.height > MAX_PIXELS:
                    raise InvalidInput.one(
                        "image", "image_dimensions", "has too many pixels (at most 40 megapixels)"
                    )
                image.seek(0)
                image.load()
                picture = ImageOps.exif_transpose(image)
                picture = picture.convert("RGBA")
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        raise InvalidInput.one(
            "image", "image_unreadable", "is not a readable PNG, JPEG, GIF or WebP picture"
        ) from exc
    square = ImageOps.fit(picture, (AVATAR_SIZE, AVATAR_SIZE), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, format="PNG", optimize=True)
    return out.getvalue()
