"""The numerical rank of a matrix: one rule for weights and activations alike."""

from __future__ import annotations

import numpy as np

__all__ = ["matrix_rank"]

#: Columns of a matrix converted to float64 at a time.
_CHUNK = 4096


def matrix_rank(matrix: np.ndarray) -> int:
    """numpy's ``matrix_rank``: singular values above max(m, n) x eps x s_max, with
    float64's eps for float64 values and float32's for all others (float32 and
    narrower floats, integers), computed from the small side's Gram matrix.

    The Gram matrix of an m x n matrix (m <= n) is m x m, summed over chunks of
    columns: memory stays near the matrix itself, where an SVD of a 768 x 50257 LM head
    needs several copies of it. Its eigenvalues are the squared singular values, exact
    in float64 far below the tolerance (float32's eps times n, squared, is above
    float64's eps).
    """
    if matrix.dtype == np.float64:
        return int(np.linalg.matrix_rank(matrix))  # its eps is below what a Gram resolves
    if matrix.shape[0] > matrix.shape[1]:
        matrix = matrix.T
    rows, columns = matrix.shape
    if not rows or not columns:
        return 0
    gram = np.zeros((rows, rows))
    for start in range(0, columns, _CHUNK):
        block = np.asarray(matrix[:, start : start + _CHUNK], dtype=np.float64)
        gram += block @ block.T
    squares = np.linalg.eigvalsh(gram)
    largest = squares.max()
    if largest <= 0:
        return 0
    tolerance = np.sqrt(largest) * max(rows, columns) * np.finfo(np.float32).eps
    return int((np.sqrt(np.clip(squares, 0, None)) > tolerance).sum())
