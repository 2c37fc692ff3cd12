"""A matrix's singular values and the widths read off them: one rule for weights and
activations alike.

- numerical rank: singular values above the rounding the values carry, ``eps x
  sqrt(depth + 1) x ||A||_F`` (:func:`tolerance`): a stored weight is rounded once, an
  activation after each op on its longest path from the inputs, the errors adding like
  a random walk; the error matrix's spectral norm is at most its Frobenius norm, at
  most that. It does not grow with the matrix's size, as numpy's ``matrix_rank`` cut
  (max(m, n) x eps x s_max, 1.6% of the largest value at width 131,072) does;
- energy rank at E: the smallest k whose top-k singular values hold a fraction E of the
  sum of the squares of those above the tolerance (so never above the rank);
- stable rank: sum of squares / the largest square (||W||_F^2 / ||W||_2^2);
- effective rank: exp(entropy of the singular values normalised to sum 1) (Roy and
  Vetterli, 2007);
- the **random baseline**: the singular values a matrix of independent random entries
  of the same shape has, by the Marchenko-Pastur law (:func:`random_values`; a
  depthwise Conv's one value per block by the chi law of a random filter's norm); a map is
  *clearly below* it when its energy rank is at least 10% and at least 3 directions
  below the baseline's (:func:`clearly_below`).

Singular values come from the Gram matrix of the small side, summed over chunks of
columns: memory stays near the matrix itself, where an SVD of a 768 x 50257 LM head
needs several copies of it (measured: 11.5 s and 806 MiB). Its eigenvalues are the
squared singular values to float64's eps times the largest: exact far below float32's
tolerance, and for the energy figures, which the largest values decide. Its limit: a
singular value below sqrt(float64 eps) ~ 1.5e-8 of the largest is lost in the rounding
of the squares, so a float64 matrix, whose tolerance lies below that, takes numpy's SVD.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from onnx_flow.records import Node
from onnx_flow.report import LayerSpectrum

__all__ = [
    "REPORTED_ENERGY",
    "Spectrum",
    "clearly_below",
    "from_gram",
    "gram",
    "joined",
    "random_values",
    "spectrum",
    "tolerance",
]

#: Columns of a matrix converted to float64 at a time.
_CHUNK = 4096

#: The fraction spectra give an energy rank at when the caps are numerical ranks.
REPORTED_ENERGY = 0.99

#: Clearly below the random baseline: by this fraction of it, and by at least
#: ``_MARGIN_DIRECTIONS``. Over 400 random matrices of each of 14 shapes (2 x 2 to
#: 256 x 256; Gaussian, uniform and Student-t(5) entries) the energy rank at 0.99 fell
#: at most 2 below the baseline.
_MARGIN_FRACTION = 0.1
_MARGIN_DIRECTIONS = 3

#: Points of the Marchenko-Pastur distribution function the baseline is read from.
_GRID = 1 << 14


class Spectrum(NamedTuple):
    """A matrix's singular values (float64, largest first), its numerical rank, and the
    shape of the matrix (of each of ``blocks`` equal blocks of a block-diagonal one)."""

    values: np.ndarray
    rank: int
    shape: tuple[int, int]
    blocks: int = 1

    def energy_rank(self, energy: float) -> int:
        """The smallest k whose top-k singular values hold ``energy`` of the squares of
        those above the tolerance."""
        return _energy_rank(self.values[: self.rank], energy)

    @property
    def stable_rank(self) -> float:
        """Sum of the squared singular values over the largest square; 0 for zero."""
        return _stable_rank(self.values)

    @property
    def effective_rank(self) -> float:
        """exp(entropy of the singular values normalised to sum 1); 0 for zero."""
        total = self.values.sum()
        if total <= 0:
            return 0.0
        shares = self.values[self.values > 0] / total
        return math.exp(float(-(shares * np.log(shares)).sum()))

    @property
    def baseline(self) -> np.ndarray:
        """The singular values a random matrix of the same shape (and blocks) has."""
        if self.blocks > 1 and min(self.shape) == 1:  # one value per block: its norm
            return _norm_values(max(self.shape), self.blocks)
        return np.tile(random_values(*self.shape), self.blocks)

    def capped(self, energy: float | None) -> bool:
        """Whether ``energy`` caps this map below its rank: it is clearly below its
        random baseline there."""
        if energy is None:
            return False
        return clearly_below(self.energy_rank(energy), _energy_rank(self.baseline, energy))

    def cap(self, energy: float | None) -> int:
        """The directions it passes: the energy rank where ``energy`` caps it, else
        the rank."""
        return self.energy_rank(energy) if energy is not None and self.capped(energy) else self.rank

    def record(
        self,
        tensor: str,
        producer: Node | None,
        width: int,
        energy: float | None,
        **measured: Any,
    ) -> LayerSpectrum:
        """The report's record of this spectrum, for ``tensor`` written by ``producer``
        (``width``: the most directions it could pass); ``measured`` gives the measure's
        own fields (dead units, sketched) and overrides (``capped``)."""
        fraction = REPORTED_ENERGY if energy is None else energy
        energy_rank = self.energy_rank(fraction)
        baseline = self.baseline
        baseline_rank = _energy_rank(baseline, fraction)
        return LayerSpectrum(
            tensor=tensor,
            node=producer.name if producer else None,
            module=producer.module if producer else None,
            op=producer.op_type if producer else None,
            width=width,
            rank=self.rank,
            energy_rank=energy_rank,
            stable_rank=round(self.stable_rank, 6),
            effective_rank=round(self.effective_rank, 6),
            energy=fraction,
            matrix=self.shape,
            blocks=self.blocks,
            baseline_energy_rank=baseline_rank,
            baseline_stable_rank=round(_stable_rank(baseline), 6),
            margin=baseline_rank - energy_rank,
            capped=self.capped(energy),
        )._replace(**measured)


def clearly_below(energy_rank: int, baseline: int) -> bool:
    """Whether an energy rank lies clearly below a random baseline's: by 10% of it and
    by 3 directions at least."""
    margin = max(_MARGIN_DIRECTIONS, math.ceil(_MARGIN_FRACTION * baseline))
    return baseline - energy_rank >= margin


def tolerance(frobenius: float, dtype: np.dtype, depth: int = 0) -> float:
    """The size below which a singular value is rounding: ``eps x sqrt(depth + 1) x
    ||A||_F`` for values of ``dtype`` (float64's eps for float64, float32's for all
    others) computed by ``depth`` ops in sequence (0: stored)."""
    eps = np.finfo(np.float64 if dtype == np.float64 else np.float32).eps
    return float(eps) * math.sqrt(depth + 1) * frobenius


def spectrum(matrix: np.ndarray) -> Spectrum:
    """The singular values and numerical rank of a stored 2-D array (a weight)."""
    rows, columns = matrix.shape
    if not rows or not columns:
        return Spectrum(np.zeros(0), 0, (rows, columns))
    if matrix.dtype == np.float64:
        values = np.linalg.svd(matrix, compute_uv=False)
    else:
        values = _singular_values(gram(matrix))
    frobenius = math.sqrt(float((values**2).sum()))
    return measured(values, tolerance(frobenius, matrix.dtype), (rows, columns))


def from_gram(gram: np.ndarray, limit: float, shape: tuple[int, int]) -> Spectrum:
    """The spectrum of a matrix of ``shape`` given its float64 Gram matrix (of either
    side) and the tolerance its values carry."""
    return measured(_singular_values(gram), limit, shape)


def measured(values: np.ndarray, limit: float, shape: tuple[int, int]) -> Spectrum:
    """A spectrum from its singular values (largest first) and its tolerance."""
    rank = int((values > limit).sum()) if values.size and values[0] > 0 else 0
    return Spectrum(np.ascontiguousarray(values, dtype=np.float64), rank, shape)


def joined(parts: Iterable[Spectrum]) -> Spectrum:
    """The spectrum of a block-diagonal matrix of equal blocks (a grouped Conv): its
    blocks' singular values together, and their ranks added up."""
    parts = list(parts)
    if not parts:
        return Spectrum(np.zeros(0), 0, (0, 0))
    values = np.sort(np.concatenate([p.values for p in parts]))
    return Spectrum(values[::-1].copy(), sum(p.rank for p in parts), parts[0].shape, len(parts))


@functools.lru_cache(maxsize=256)
def random_values(rows: int, columns: int) -> np.ndarray:
    """The singular values (largest first, unit scale) of a ``rows x columns`` matrix of
    independent random entries: the quantiles (i + 1/2) / m of the Marchenko-Pastur law
    of ratio m / n (m the small side), whose square roots a large random matrix's
    singular values follow (the energy ranks of Gaussian matrices of 64 x 64 to
    1024 x 1024 match them to 1 direction)."""
    small, large = min(rows, columns), max(rows, columns)
    if not small:
        return np.zeros(0)
    ratio = small / large
    low, high = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    # x = low + (high - low)(1 - cos t)/2 takes the square-root edges out of the density.
    angle = np.linspace(0.0, math.pi, _GRID)
    x = low + (high - low) * (1 - np.cos(angle)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        density = ((high - low) / 2) ** 2 * np.sin(angle) ** 2 / (2 * math.pi * ratio * x)
    if low == 0:  # the limit at x = 0 for a square matrix
        density[0] = high / (2 * math.pi)
    steps = (density[1:] + density[:-1]) / 2 * np.diff(angle)
    distribution = np.concatenate([[0.0], np.cumsum(steps)])
    distribution /= distribution[-1]
    quantiles = np.interp((np.arange(small) + 0.5) / small, distribution, x)
    values = np.sqrt(quantiles)[::-1].copy()
    values.flags.writeable = False
    return values


@functools.lru_cache(maxsize=256)
def _norm_values(length: int, count: int) -> np.ndarray:
    """The norms (largest first, unit scale) of ``count`` random vectors of ``length``
    independent entries: the quantiles (i + 1/2) / count of a chi distribution (Wilson
    and Hilferty's cube-root normal form), which the blocks of a depthwise Conv follow
    where the Marchenko-Pastur law, one value per block, has no spread (its energy rank
    came out 3% high on 96 random 1 x 9 blocks)."""
    normal = NormalDist()
    z = np.array([normal.inv_cdf((i + 0.5) / count) for i in range(count)])
    step = 2 / (9 * length)
    squares = np.clip(1 - step + z * math.sqrt(step), 0, None) ** 3
    values = np.sqrt(squares)[::-1].copy()
    values.flags.writeable = False
    return values


def _energy_rank(values: np.ndarray, energy: float) -> int:
    """The smallest k whose top-k of ``values`` hold ``energy`` of their squares."""
    held = np.cumsum(values**2)
    if not held.size or held[-1] <= 0:
        return 0
    return min(int(np.searchsorted(held, energy * held[-1], side="left")) + 1, held.size)


def _stable_rank(values: np.ndarray) -> float:
    """Sum of squares over the largest square; 0 for zero."""
    if not values.size or values[0] <= 0:
        return 0.0
    return float((values**2).sum() / values[0] ** 2)


@functools.cache
def _libraries() -> ThreadpoolController:
    """The thread pools of the loaded libraries (BLAS among them), found once."""
    return ThreadpoolController()


def _singular_values(gram: np.ndarray) -> np.ndarray:
    """The singular values, largest first, of a matrix whose float64 Gram this is.

    LAPACK's eigenvalue solver runs on one BLAS thread: with two, beside a busy core,
    a 1,500 x 1,500 Gram took 2.0 s against 0.25 s (OpenBLAS's threads wait on each
    other), and on an idle machine the second thread gains little.
    """
    with _libraries().limit(limits=1, user_api="blas"):
        squares = np.linalg.eigvalsh(gram)
    values: np.ndarray = np.sqrt(np.clip(squares, 0, None))[::-1]
    return values


def gram(matrix: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """The float64 Gram matrix of the small side of ``matrix`` (less ``means``, one per
    column, when given), summed over chunks of the long side."""
    if matrix.shape[0] > matrix.shape[1]:
        rows, long = matrix.shape[1], matrix.shape[0]
        result = np.zeros((rows, rows))
        for start in range(0, long, _CHUNK):
            block = np.asarray(matrix[start : start + _CHUNK], dtype=np.float64)
            if means is not None:
                block = block - means
            result += block.T @ block
        return result
    rows, long = matrix.shape
    result = np.zeros((rows, rows))
    for start in range(0, long, _CHUNK):
        block = np.asarray(matrix[:, start : start + _CHUNK], dtype=np.float64)
        if means is not None:
            block = block - means[start : start + _CHUNK]
        result += block @ block.T
    return result
