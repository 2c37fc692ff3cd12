"""Real samples for the ``data`` measure, made from files that installed packages ship:
nothing is downloaded, the same code gives the same samples on every machine of the
same environment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: What magika reads of a file: the first and the last 4,096 bytes, of which it keeps
#: 1,024 at each end once the whitespace there is stripped.
MAGIKA_BLOCK = 4096
MAGIKA_SIDE = 1024
MAGIKA_PADDING = 256


def site_files(count: int, smallest: int = 8) -> list[Path]:
    """``count`` files spread evenly over the site-packages folder numpy is installed in:
    every file of at least ``smallest`` bytes outside ``__pycache__``, sorted by path,
    then every k-th of them."""
    root = Path(np.__file__).parents[1]
    found: list[str] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                if os.path.getsize(path) >= smallest:
                    found.append(path)
    found.sort()
    if len(found) < count:
        raise ValueError(f"only {len(found)} files under {root}, {count} wanted")
    step = len(found) // count
    return [Path(path) for path in found[::step][:count]]


def magika_features(data: bytes) -> np.ndarray:
    """magika's input for a file's bytes: the first bytes (leading whitespace stripped,
    1,024 kept, padded after with 256) and the last (trailing whitespace stripped, 1,024
    kept, padded before with 256), 2,048 int32 values."""
    n = min(MAGIKA_BLOCK, len(data))
    head = list(data[:n].lstrip()[:MAGIKA_SIDE])
    tail = list(data[len(data) - n :].rstrip()[-MAGIKA_SIDE:])
    head += [MAGIKA_PADDING] * (MAGIKA_SIDE - len(head))
    tail = [MAGIKA_PADDING] * (MAGIKA_SIDE - len(tail)) + tail
    return np.array(head + tail, dtype=np.int32)


def magika_samples(count: int) -> np.ndarray:
    """magika's inputs (count x 2,048 int32) for ``count`` files of site-packages."""
    rows = []
    for path in site_files(count):
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            if size <= 2 * MAGIKA_BLOCK:
                data = handle.read()
            else:  # only the first and the last 4,096 bytes are read
                data = handle.read(MAGIKA_BLOCK)
                handle.seek(size - MAGIKA_BLOCK)
                data += handle.read()
        rows.append(magika_features(data))
    return np.stack(rows)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8 x 8 images, flattened to 64 values, in
    its wheel): each pixel standardised (the 3 always blank ones left at 0), float32;
    and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = data.data.astype(np.float64)
    spread = pixels.std(axis=0)
    spread[spread == 0] = 1
    standard = (pixels - pixels.mean(axis=0)) / spread
    return standard.astype(np.float32), data.target.astype(np.int64)


def digit_lines(count: int, width: int = 320, per_line: int = 6) -> np.ndarray:
    """``count`` text-line images as PP-OCR's recogniser takes them (count x 3 x 48 x
    ``width``, float32): line i holds the next ``per_line`` of scikit-learn's digits,
    each 8 x 8 image enlarged 6 times to 48 x 48, dark on white, padded on the right
    with white; normalised as PP-OCR does, (value / 255 - 0.5) / 0.5."""
    from sklearn.datasets import load_digits

    images = load_digits().images  # 0 (blank) to 16 (ink)
    if count * per_line > len(images) or per_line * 48 > width:
        raise ValueError(f"{count} lines of {per_line} digits do not fit")
    ink = np.kron(images[: count * per_line], np.ones((6, 6))) / 16
    lines = np.ones((count, 48, width))
    for place in range(per_line):
        lines[:, :, place * 48 : (place + 1) * 48] = 1 - ink[place::per_line]
    normalised = (lines - 0.5) / 0.5  # lines holds value / 255
    return np.repeat(normalised[:, None], 3, axis=1).astype(np.float32)
