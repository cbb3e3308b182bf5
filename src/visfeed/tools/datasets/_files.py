"""File-level helpers shared by the sources: which files are images, which images open, atomic writes.

Image checks are split in two depths because decoding every test image of ImageNet or SUN397 costs
minutes, while the few-shot images the optimizer looks at every iteration must be known good:
``decode`` fully decodes (JPEGs in draft mode, which still reads every byte, so truncation is caught),
``header`` only asks Pillow to identify the file (catches empty, missing and non-image files).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from PIL import Image

logger = logging.getLogger(__name__)

#: Same suffixes as torchvision's ``IMG_EXTENSIONS``, so ImageFolder trees read the same here and there.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

CheckDepth = Literal["decode", "header", "exists"]

# Threads, not processes: Pillow releases the GIL while it decodes, and the work is mostly file I/O.
_WORKERS = 8


def is_image_name(name: str) -> bool:
    """True when the file name has an image suffix (case-insensitive) and is not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def check_image(path: str, depth: CheckDepth) -> str | None:
    """Return why ``path`` is not a usable image, or None when it is (at the given depth)."""
    if depth == "exists":
        return None if os.path.isfile(path) else "missing"
    try:
        with Image.open(path) as im:
            if depth == "decode":
                if im.format == "JPEG":
                    im.draft("RGB", (64, 64))
                im.load()
    except FileNotFoundError:
        return "missing"
    except Image.DecompressionBombError as exc:
        return f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def check_images(paths: Iterable[str], depth: CheckDepth) -> dict[str, str]:
    """Check many images in parallel; return ``{path: reason}`` for the bad ones only."""
    items = list(paths)
    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=min(_WORKERS, len(items))) as pool:
        reasons = list(pool.map(lambda p: check_image(p, depth), items))
    return {p: r for p, r in zip(items, reasons, strict=True) if r is not None}
