"""The load X-Y routes put on the routers and chip-to-chip links of a system (the time model's
router and link terms; docs/mapping.md, "The time model"). Routes follow ``place.route_tiles``:
first along X on the source's row of the global tile grid, then along Y on the target's
column; a step between two chips loads the links of both.

numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profile import ChipProfile, SystemProfile


def chip_numbers(system: SystemProfile, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """int64: the chip number of the chips at (cx, cy) of the system's layout (the serpentine
    order of ``place.positions``)."""
    cx, cy = np.asarray(cx, dtype=np.int64), np.asarray(cy, dtype=np.int64)
    return cy * system.chips_x + np.where(cy % 2 == 0, cx, system.chips_x - 1 - cx)


@dataclass(eq=False)
class MeshLoads:
    """The load X-Y routes put on the routers and chip-to-chip links of a system, added route
    by route (``add``) as range updates of difference arrays (O(routes + grid), whatever the
    routes' lengths: the 121 million routes of the SEW-ResNet-18 at 224 x 224 cross hundreds of
    tiles each). Then ``router()`` (float64 per global tile, index gy x ``width`` + gx: the
    loads of every route through it), ``visited()`` (bool: a route passes), ``links()``
    (float64 per chip number: the loads of every step of a route between it and a
    neighbouring chip, counted on both chips) and ``crossed()`` (bool per chip number).
    Loads are summed in another order than one route at a time: equal to rounding."""

    chip: ChipProfile
    system: SystemProfile
    width: int
    height: int
    # [height, width + 1] along rows (a route's X leg), [height + 1, width] along columns
    # (its Y leg); the same per chip row and column for the chip-to-chip steps
    x_load: np.ndarray
    x_count: np.ndarray
    y_load: np.ndarray
    y_count: np.ndarray
    cx_load: np.ndarray
    cx_count: np.ndarray
    cy_load: np.ndarray
    cy_count: np.ndarray

    @classmethod
    def empty(cls, chip: ChipProfile, system: SystemProfile) -> MeshLoads:
        w, h = system.chips_x * chip.mesh_tiles_x, system.chips_y * chip.mesh_tiles_y
        cw, ch = system.chips_x, system.chips_y
        return cls(chip, system, w, h, np.zeros((h, w + 1)), np.zeros((h, w + 1), np.int64),
                   np.zeros((h + 1, w)), np.zeros((h + 1, w), np.int64),
                   np.zeros((ch, cw + 1)), np.zeros((ch, cw + 1), np.int64),
                   np.zeros((ch + 1, cw)), np.zeros((ch + 1, cw), np.int64))

    @staticmethod
    def _range_add(load: np.ndarray, count: np.ndarray, line: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, value: np.ndarray, along_rows: bool) -> None:
        """Add ``value`` to the cells lo..hi (inclusive; none where hi < lo) of each ``line``
        (a row when ``along_rows``, else a column) of the difference arrays."""
        keep = hi >= lo
        line, lo, hi, value = line[keep], lo[keep], hi[keep], value[keep]
        cols, size = load.shape[1], load.size
        if along_rows:
            start, stop = line * cols + lo, line * cols + hi + 1
        else:
            start, stop = lo * cols + line, (hi + 1) * cols + line
        load += (np.bincount(start, weights=value, minlength=size)
                 - np.bincount(stop, weights=value, minlength=size)).reshape(load.shape)
        count += (np.bincount(start, minlength=size)
                  - np.bincount(stop, minlength=size)).reshape(count.shape)

    def add(self, a: np.ndarray, b: np.ndarray, load: np.ndarray) -> None:
        """Route r runs from global tile ``a[r]`` to ``b[r]`` (int [R, 2], (gx, gy)), first
        along X on row a.gy, then along Y on column b.gx (the tiles of ``place.route_tiles``),
        carrying ``load[r]``."""
        a = np.asarray(a, dtype=np.int64).reshape(-1, 2)
        b = np.asarray(b, dtype=np.int64).reshape(-1, 2)
        load = np.asarray(load, dtype=np.float64)
        ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
        # routers: the X leg a.gx .. b.gx on row a.gy (ends included), the Y leg on column b.gx
        # from the tile after the corner to b.gy
        self._range_add(self.x_load, self.x_count, ay, np.minimum(ax, bx), np.maximum(ax, bx),
                        load, True)
        step = np.sign(by - ay)
        self._range_add(self.y_load, self.y_count, bx, np.minimum(ay + step, by),
                        np.where(step != 0, np.maximum(ay + step, by), by - 1), load, False)
        # chip-to-chip steps: between consecutive chips of the chip row (X leg) or chip column
        # (Y leg) the leg spans, each step counted on both of its chips
        tx, ty = self.chip.mesh_tiles_x, self.chip.mesh_tiles_y
        for first, second, line, along, arrays in (
                (ax // tx, bx // tx, ay // ty, True, (self.cx_load, self.cx_count)),
                (ay // ty, by // ty, bx // tx, False, (self.cy_load, self.cy_count))):
            lo, hi = np.minimum(first, second), np.maximum(first, second)
            self._range_add(*arrays, line, lo, hi - 1, load, along)  # the chip before a step
            self._range_add(*arrays, line, lo + 1, hi, load, along)  # the chip after it

    def router(self) -> np.ndarray:
        grid = (np.cumsum(self.x_load, axis=1)[:, :-1] + np.cumsum(self.y_load, axis=0)[:-1])
        return np.maximum(grid, 0.0).reshape(-1)  # rounding of the differences: never < 0

    def visited(self) -> np.ndarray:
        grid = np.cumsum(self.x_count, axis=1)[:, :-1] + np.cumsum(self.y_count, axis=0)[:-1]
        return (grid > 0).reshape(-1)

    def _by_chip(self, grid: np.ndarray) -> np.ndarray:
        cy, cx = np.meshgrid(np.arange(self.system.chips_y), np.arange(self.system.chips_x),
                             indexing="ij")
        out = np.zeros(self.system.chips_x * self.system.chips_y, dtype=grid.dtype)
        out[chip_numbers(self.system, cx, cy).reshape(-1)] = grid.reshape(-1)
        return out

    def links(self) -> np.ndarray:
        grid = np.cumsum(self.cx_load, axis=1)[:, :-1] + np.cumsum(self.cy_load, axis=0)[:-1]
        return self._by_chip(np.maximum(grid, 0.0))

    def crossed(self) -> np.ndarray:
        grid = np.cumsum(self.cx_count, axis=1)[:, :-1] + np.cumsum(self.cy_count, axis=0)[:-1]
        return self._by_chip(grid) > 0
