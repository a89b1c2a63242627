"""Classic 3x3 image filters with gpuconv's conv2d on one of scikit-learn's bundled sample photos.

    python examples/filters_demo.py out_dir [--image china.jpg] [--scale 2]

Writes original.png and, computed with ``F.conv2d``: sobel_x.png, sobel_y.png, laplacian.png and
edges.png (gradient magnitude) on the grey image, and box_blur.png, gaussian_blur.png and
sharpen.png on each colour channel (one depthwise convolution, ``groups=3``). PNGs are written by a
small writer here (zlib + struct), so nothing beyond NumPy and scikit-learn is needed.
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_image

import gpuconv
import gpuconv.functional as F

EDGE_FILTERS = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}
COLOUR_FILTERS = {
    "box_blur": np.full((3, 3), 1 / 9),
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
}


def write_png(path: Path, image: np.ndarray) -> None:
    """Writes an (H, W) grey or (H, W, 3) RGB uint8 image as an 8-bit PNG."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    colour_type = 2 if image.ndim == 3 else 0
    rows = image.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                     + chunk(b"IEND", b""))


def to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)


def normalize(a: np.ndarray) -> np.ndarray:
    """Maps a signed response to [0, 1] with 0.5 for zero (symmetric around zero)."""
    return 0.5 + a / (2 * max(float(np.abs(a).max()), 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--image", default="china.jpg", help="china.jpg or flower.jpg (bundled with scikit-learn)")
    parser.add_argument("--scale", type=int, default=1, help="keep every scale-th pixel (smaller, faster)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    photo = load_sample_image(args.image)[::args.scale, ::args.scale]  # (H, W, 3) uint8
    rgb = gpuconv.asarray(np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32) / 255)
    grey = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).astype(np.float32)

    # Edge filters on the grey image: one convolution with three output channels.
    edge_weight = gpuconv.asarray(np.array(list(EDGE_FILTERS.values()), np.float32)[:, None])  # (3, 1, 3, 3)
    edges = gpuconv.to_numpy(F.conv2d(grey, edge_weight, padding=1))[0]
    # Colour filters: depthwise (groups=3), each of the three filters applied to R, G and B in turn:
    # output channel 3*c + f is filter f on channel c.
    filters = np.array([np.asarray(f, np.float64) for f in COLOUR_FILTERS.values()], np.float32)
    colour_weight = gpuconv.asarray(np.tile(filters, (3, 1, 1))[:, None])  # (9, 1, 3, 3)
    colour = gpuconv.to_numpy(F.conv2d(rgb, colour_weight, padding=1, groups=3))[0].reshape(3, 3, *rgb.shape[2:])

    write_png(args.out_dir / "original.png", photo.copy())
    for index, name in enumerate(EDGE_FILTERS):
        write_png(args.out_dir / f"{name}.png", to_uint8(normalize(edges[index])))
    magnitude = np.hypot(edges[0], edges[1])
    write_png(args.out_dir / "edges.png", to_uint8(magnitude / max(float(magnitude.max()), 1e-12)))
    for index, name in enumerate(COLOUR_FILTERS):
        write_png(args.out_dir / f"{name}.png", to_uint8(colour[:, index].transpose(1, 2, 0)))
    print(f"wrote {len(EDGE_FILTERS) + len(COLOUR_FILTERS) + 2} PNGs of {photo.shape[1]}x{photo.shape[0]} to "
          f"{args.out_dir} (backend {gpuconv.get_backend().name})")


if __name__ == "__main__":
    main()
