"""MNIST in its own IDX format: read the four gzipped files (downloading them first where asked),
and check them before anything trains on them."""
import gzip
import hashlib
import struct
import urllib.request
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGE_SHAPE = (28, 28)
CLASSES = 10


class DataError(ValueError):
    """The data cannot be used; the message says why, on one line."""


def missing_files(folder: Path) -> list:
    return [name for name in FILES.values() if not (folder / name).is_file()]


def download(base_url: str, folder: Path) -> None:
    """Fetch the missing official files from BASE_URL/<file name> (any MNIST mirror)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing_files(folder):
        url = f"{base_url.rstrip('/')}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                content = response.read()
        except OSError as error:
            raise DataError(f"cannot download {url}: {error}") from error
        (folder / name).write_bytes(content)


def fingerprint(folder: Path) -> str:
    """SHA-256 of the four files, so ZenML's cache notices changed data under the same path."""
    digest = hashlib.sha256()
    for name in FILES.values():
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes: 0, 0, 0x08, number of dimensions, each size (big-endian), data."""
    try:
        with gzip.open(path, "rb") as f:
            content = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable gzip file ({error})") from error
    if len(content) < 4:
        raise DataError(f"{path}: too short for an IDX file")
    zero, kind, ndim = struct.unpack(">HBB", content[:4])
    if zero != 0 or kind != 0x08 or ndim == 0:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", content[4:header])
    if len(content) - header != int(np.prod(shape)):
        raise DataError(f"{path}: {len(content) - header} bytes of data, the header announces shape {shape}")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def load(folder: Path, download_url: str = "") -> dict:
    """The four arrays, by the keys of FILES; downloads missing files only when a URL is given."""
    if missing_files(folder) and download_url:
        download(download_url, folder)
    missing = missing_files(folder)
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (give data.download_url in the config to fetch them)")
    return {key: read_idx(folder / name) for key, name in FILES.items()}


def validate(train_images, train_labels, test_images, test_labels) -> int:
    """Check shapes, label range, NaN and that every class is there; return the number of classes."""
    problems = []
    for part, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            problems.append(f"{part} images have shape {images.shape}, expected (N, 28, 28)")
        if labels.ndim != 1 or len(labels) != len(images):
            problems.append(f"{part} labels have shape {labels.shape} for {len(images)} images")
        if len(images) == 0:
            problems.append(f"{part} set is empty")
        if np.isnan(images.astype(np.float32)).any():
            problems.append(f"{part} images contain NaN")
        outside = sorted({int(v) for v in np.unique(labels) if not 0 <= v < CLASSES})
        if outside:
            problems.append(f"{part} labels outside 0..{CLASSES - 1}: {outside}")
    absent = sorted(set(range(CLASSES)) - {int(v) for v in np.unique(train_labels)})
    if absent:
        problems.append(f"classes {absent} have no training example")
    if problems:
        raise DataError("invalid data: " + "; ".join(problems))
    return CLASSES
