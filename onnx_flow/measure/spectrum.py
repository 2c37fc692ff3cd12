"""A matrix's singular values and the widths read off them: one rule for weights and
activations alike.

- numerical rank: singular values above max(m, n) x eps x s_max (numpy's
  ``matrix_rank``), with float64's eps for float64 values and float32's for all others
  (float32 and narrower floats, integers);
- energy rank at E: the smallest k whose top-k singular values hold a fraction E of the
  sum of their squares;
- stable rank: sum of squares / the largest square (||W||_F^2 / ||W||_2^2);
- effective rank: exp(entropy of the singular values normalised to sum 1) (Roy and
  Vetterli, 2007).

Singular values come from the Gram matrix of the small side, summed over chunks of
columns: memory stays near the matrix itself, where an SVD of a 768 x 50257 LM head
needs several copies of it (measured: 11.5 s and 806 MiB). Its eigenvalues are the
squared singular values to float64's eps times the largest: exact far below float32's
tolerance (float32's eps times n, squared, is above float64's eps), and for the energy
figures, which the largest values decide. Its limit: a singular value below
sqrt(float64 eps) ~ 1.5e-8 of the largest is lost in the rounding of the squares, so a
float64 matrix, whose tolerance lies below that, takes numpy's SVD instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from onnx_flow.records import Node
from onnx_flow.report import LayerSpectrum

__all__ = ["REPORTED_ENERGY", "Spectrum", "joined", "spectrum"]

#: Columns of a matrix converted to float64 at a time.
_CHUNK = 4096

#: The fraction spectra give an energy rank at when the caps are numerical ranks.
REPORTED_ENERGY = 0.99


class Spectrum(NamedTuple):
    """A matrix's singular values (float64, largest first) and its numerical rank."""

    values: np.ndarray
    rank: int

    def energy_rank(self, energy: float) -> int:
        """The smallest k whose top-k singular values hold ``energy`` of the squares."""
        held = np.cumsum(self.values**2)
        if not held.size or held[-1] <= 0:
            return 0
        return min(int(np.searchsorted(held, energy * held[-1], side="left")) + 1, held.size)

    @property
    def stable_rank(self) -> float:
        """Sum of the squared singular values over the largest square; 0 for zero."""
        if not self.values.size or self.values[0] <= 0:
            return 0.0
        return float((self.values**2).sum() / self.values[0] ** 2)

    @property
    def effective_rank(self) -> float:
        """exp(entropy of the singular values normalised to sum 1); 0 for zero."""
        total = self.values.sum()
        if total <= 0:
            return 0.0
        shares = self.values[self.values > 0] / total
        return math.exp(float(-(shares * np.log(shares)).sum()))

    def cap(self, energy: float | None) -> int:
        """The directions it passes: the energy rank at ``energy``, else the rank."""
        return self.rank if energy is None else self.energy_rank(energy)

    def record(
        self, tensor: str, producer: Node | None, width: int, energy: float | None
    ) -> LayerSpectrum:
        """The report's record of this spectrum, for ``tensor`` written by ``producer``."""
        fraction = REPORTED_ENERGY if energy is None else energy
        return LayerSpectrum(
            tensor=tensor,
            node=producer.name if producer else None,
            module=producer.module if producer else None,
            op=producer.op_type if producer else None,
            width=width,
            rank=self.rank,
            energy_rank=self.energy_rank(fraction),
            stable_rank=round(self.stable_rank, 6),
            effective_rank=round(self.effective_rank, 6),
            energy=fraction,
        )


def spectrum(matrix: np.ndarray) -> Spectrum:
    """The singular values and numerical rank of a 2-D array."""
    rows, columns = matrix.shape
    if not rows or not columns:
        return Spectrum(np.zeros(0), 0)
    if matrix.dtype == np.float64:
        values = np.linalg.svd(matrix, compute_uv=False)
        eps = float(np.finfo(np.float64).eps)
    else:
        values = np.sqrt(np.clip(np.linalg.eigvalsh(_gram(matrix)), 0, None))[::-1]
        eps = float(np.finfo(np.float32).eps)
    tolerance = values[0] * max(rows, columns) * eps
    rank = int((values > tolerance).sum()) if values[0] > 0 else 0
    return Spectrum(np.ascontiguousarray(values, dtype=np.float64), rank)


def joined(parts: Iterable[Spectrum]) -> Spectrum:
    """The spectrum of a block-diagonal matrix (a grouped Conv): its blocks' singular
    values together, and their ranks added up."""
    parts = list(parts)
    values = np.sort(np.concatenate([p.values for p in parts]) if parts else np.zeros(0))
    return Spectrum(values[::-1].copy(), sum(p.rank for p in parts))


def _gram(matrix: np.ndarray) -> np.ndarray:
    """The float64 Gram matrix of the small side of ``matrix``."""
    if matrix.shape[0] > matrix.shape[1]:
        matrix = matrix.T
    rows, columns = matrix.shape
    gram = np.zeros((rows, rows))
    for start in range(0, columns, _CHUNK):
        block = np.asarray(matrix[:, start : start + _CHUNK], dtype=np.float64)
        gram += block @ block.T
    return gram
