"""Make the small MNIST-format sample shipped in demo/data/sample/ (run once; the output is in git).

This is NOT MNIST. It is scikit-learn's bundled "digits" data set (1,797 handwritten digits, 8x8
pixels, 17 grey levels, from the UCI repository), each image scaled up 3x to 24x24, padded to
28x28, stretched to 0..255 and written in MNIST's own IDX format with MNIST's file names, so the
demo reads it with the same code as the real thing, without any download:

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (1,200 images)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    (300 images)

    .venv/bin/python demo/data/make_sample.py [OUT_DIR]     # needs scikit-learn (not at run time)
"""
import gzip
import struct
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

TRAIN, TEST = 1200, 300


def to_mnist_images(digits: np.ndarray) -> np.ndarray:
    """8x8 images with values 0..16 -> 28x28 uint8 images with values 0..255."""
    big = np.kron(digits, np.ones((3, 3)))                   # 8x8 -> 24x24, each pixel a 3x3 block
    padded = np.pad(big, ((0, 0), (2, 2), (2, 2)))           # 24x24 -> 28x28, digit centred
    return np.round(padded * 255 / 16).astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, 0x08 = unsigned byte, number of dimensions), each dimension big-endian, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:  # same bytes each run
        out.write(header + array.astype(np.uint8).tobytes())


def main(out: Path) -> None:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))[:TRAIN + TEST]
    images, labels = to_mnist_images(digits.images[order]), digits.target[order]
    out.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(0, TRAIN)), ("t10k", slice(TRAIN, TRAIN + TEST))):
        write_idx(out / f"{prefix}-images-idx3-ubyte.gz", images[part])
        write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", labels[part])
    print(f"wrote {TRAIN} training and {TEST} test images to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "sample")
