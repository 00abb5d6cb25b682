"""Shape arithmetic shared by the convolutional families.

Every convolutional family halves the grid with stride-2 layers and must land back on exactly
the input's edge length, whatever it is. These helpers keep that arithmetic in one place.
"""

from __future__ import annotations


def halved(size: int) -> int:
    """Edge length after a kernel-3, stride-2, padding-1 convolution: ceil(size / 2)."""
    return (size - 1) // 2 + 1


def output_padding(size_in: int, size_out: int, kernel: int, stride: int, padding: int) -> int:
    """The ConvTranspose3d output_padding that maps `size_in` to exactly `size_out`."""
    extra = size_out - ((size_in - 1) * stride - 2 * padding + kernel)
    if not 0 <= extra < stride:
        raise ValueError(f"no output_padding maps {size_in} to {size_out} (k={kernel}, s={stride}, p={padding})")
    return extra
