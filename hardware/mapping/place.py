"""Place cores on the 2-D mesh of one chip or of several tiled chips (docs/mapping.md,
"Placement").

Geometry. A chip is a mesh of ``mesh_tiles_x`` x ``mesh_tiles_y`` tiles (routers), each with
``tile_cores_x`` x ``tile_cores_y`` cores; a core's coordinates are (chip, x, y) on the chip's
core grid, its tile is (x // tile_cores_x, y // tile_cores_y). A system tiles its chips
``chips_x`` x ``chips_y``; together the tiles form one global grid, and messages follow
dimension-order (X, then Y) routes over it. A step between two tiles of one chip is an
east-west or a north-south *tile hop*; a step between two chips is an *inter-chip hop* (priced
apart, more dearly). The network's input enters at the first chip's tile (0, 0) (the host
link); it is a fixed point of the placement.

Heuristic. (1) Cores, in the topological order of their first slice's population, fill
positions along a serpentine: chips in boustrophedon order, tiles in boustrophedon order within
a chip, the cores of a tile one after the other; only the chips needed are used. (2) A few
passes of pairwise improvement: each core in turn is moved to, or swapped with the core at,
every candidate position on the chips in use (near positions only on large systems), and the
change that lowers the total cost most is kept; passes stop when one changes nothing (at most
``PASSES``; one pass over nearer positions above ``LARGE_CORES`` cores; none above
``IMPROVE_MAX_EDGES`` traffic edges, where ``fill`` alone places). The cost is
sum(traffic x (e_hop_ew x east-west hops + e_hop_ns x north-south hops + e_interchip_hop x
inter-chip hops)), i.e. routing energy when traffic is messages. Deterministic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .profile import ChipProfile, SystemProfile

#: improvement passes at most
PASSES = 4
#: above this many positions, a core's candidate positions are limited to tiles near it and
#: near its heaviest neighbours (radius ``WINDOW`` tiles)
FULL_SEARCH_POSITIONS = 256
WINDOW = 2
#: above this many cores (a multi-chip network of thousands of slices) one pass over radius
#: ``WINDOW_LARGE`` only, so that placement stays minutes, not hours, on a laptop
LARGE_CORES = 2048
PASSES_LARGE = 1
WINDOW_LARGE = 1
#: above this many traffic edges no improvement pass: the serpentine fill stands (a core's
#: every candidate is priced over all its neighbours: the CIFAR ResNet-18's 1.7 M edges take
#: minutes, the SEW-ResNet-18 at 224 x 224, 121 M edges between 119,000 cores, would take
#: hours)
IMPROVE_MAX_EDGES = 5_000_000
INPUT = -1  # the virtual core of the network's input


@dataclass(frozen=True)
class Position:
    """A core position: chip index, the chip's place (cx, cy) in the system, the core's (x, y)
    on the chip's core grid, and its tile's (gx, gy) on the system's global tile grid."""

    chip: int
    cx: int
    cy: int
    x: int
    y: int
    gx: int
    gy: int


@functools.lru_cache(maxsize=16)
def _serpentine(nx: int, ny: int) -> tuple[tuple[int, int], ...]:
    return tuple(_serpentine_list(nx, ny))


def _serpentine_list(nx: int, ny: int) -> list[tuple[int, int]]:
    out = []
    for j in range(ny):
        cols = range(nx) if j % 2 == 0 else range(nx - 1, -1, -1)
        out.extend((i, j) for i in cols)
    return out


def positions(chip: ChipProfile, system: SystemProfile) -> list[Position]:
    """Every usable core position of the system, in fill order (the serpentine)."""
    usable = system.usable_cores_per_chip or chip.cores_per_chip
    usable = min(usable, chip.cores_per_chip)
    out = []
    chips = _serpentine(system.chips_x, system.chips_y)[: system.chips]
    for index, (cx, cy) in enumerate(chips):
        taken = 0
        for tx, ty in _serpentine(chip.mesh_tiles_x, chip.mesh_tiles_y):
            for j in range(chip.tile_cores_y):
                for i in range(chip.tile_cores_x):
                    if taken == usable:
                        break
                    x, y = tx * chip.tile_cores_x + i, ty * chip.tile_cores_y + j
                    out.append(Position(index, cx, cy, x, y, cx * chip.mesh_tiles_x + tx,
                                        cy * chip.mesh_tiles_y + ty))
                    taken += 1
    return out


def input_position(chip: ChipProfile) -> Position:
    """Where the network's input enters: the first chip's tile (0, 0)."""
    del chip
    return Position(0, 0, 0, 0, 0, 0, 0)


def hops(a: Position, b: Position) -> tuple[int, int, int]:
    """(east-west tile hops, north-south tile hops, inter-chip hops) of the X-Y route a -> b."""
    ix, iy = abs(a.cx - b.cx), abs(a.cy - b.cy)
    return abs(a.gx - b.gx) - ix, abs(a.gy - b.gy) - iy, ix + iy


def route_tiles(a: Position, b: Position) -> list[tuple[int, int]]:
    """The global tiles an X-then-Y route from a to b passes through, ends included."""
    sx = 1 if b.gx >= a.gx else -1
    out = [(gx, a.gy) for gx in range(a.gx, b.gx + sx, sx)]
    sy = 1 if b.gy >= a.gy else -1
    out += [(b.gx, gy) for gy in range(a.gy + sy, b.gy + sy, sy)] if b.gy != a.gy else []
    return out


def hop_cost(chip: ChipProfile, a: Position, b: Position) -> float:
    ew, ns, ic = hops(a, b)
    return chip.e_hop_ew_pj * ew + chip.e_hop_ns_pj * ns + chip.e_interchip_hop_pj * ic


def _coords(ps: list[Position]) -> np.ndarray:
    return np.array([[p.cx, p.cy, p.gx, p.gy] for p in ps], dtype=np.int64).reshape(-1, 4)


def _hop_costs(chip: ChipProfile, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorized ``hop_cost`` between coordinate rows (cx, cy, gx, gy) of ``a`` and ``b``
    (broadcast)."""
    ix = np.abs(a[..., 0] - b[..., 0])
    iy = np.abs(a[..., 1] - b[..., 1])
    ew = np.abs(a[..., 2] - b[..., 2]) - ix
    ns = np.abs(a[..., 3] - b[..., 3]) - iy
    return chip.e_hop_ew_pj * ew + chip.e_hop_ns_pj * ns + chip.e_interchip_hop_pj * (ix + iy)


def _slots(chip: ChipProfile, system: SystemProfile, n: int) -> list[Position]:
    """The positions of the chips that ``n`` cores need, in fill order."""
    slots = positions(chip, system)
    per_chip = max(1, len(slots) // system.chips)
    used_chips = -(-n // per_chip) if n else 0
    return [p for p in slots if p.chip < used_chips]


def fill(chip: ChipProfile, system: SystemProfile, core_order: list[int]) -> dict[int, Position]:
    """Step (1) alone: the cores of ``core_order`` along the serpentine, in that order."""
    slots = _slots(chip, system, len(core_order))
    return {core: slots[row] for row, core in enumerate(core_order)}


def place(chip: ChipProfile, system: SystemProfile, core_order: list[int],
          traffic: tuple[np.ndarray, np.ndarray, np.ndarray]
          ) -> tuple[dict[int, Position], float, float]:
    """Positions of the cores (``core_order``: cores in fill order) given ``traffic``
    ((core a, core b, weight): aligned arrays, one row per pair of cores, each pair once,
    ``INPUT`` for the input; ``traffic.core_pair_traffic``). Returns (positions by core,
    initial cost, final cost).

    Each improvement step takes one core and evaluates, vectorized, moving it to every
    candidate position (swapping with the core there, if any); the best strictly improving
    change is kept (ties: the lowest position index). Candidates: every position when the
    chips in use have at most ``FULL_SEARCH_POSITIONS``, else the positions within ``WINDOW``
    tiles of the core and of its four heaviest neighbours (above ``LARGE_CORES`` cores: one
    pass, ``WINDOW_LARGE`` tiles)."""
    slots = _slots(chip, system, len(core_order))
    n = len(core_order)
    slot_xy = _coords(slots)
    # rows: the cores in fill order, then the input (row n, a fixed point)
    indptr, indices, weights = _adjacency(n, core_order, *traffic)
    nb_of = [indices[indptr[i]:indptr[i + 1]] for i in range(n + 1)]
    nw_of = [weights[indptr[i]:indptr[i + 1]] for i in range(n + 1)]
    slot_of = np.arange(n, dtype=np.int64)  # row -> slot: the serpentine fill
    occupant = np.full(len(slots), -1, dtype=np.int64)
    occupant[:n] = np.arange(n)
    xy = np.vstack([slot_xy[:n], _coords([input_position(chip)])])

    def cost_at(i: int, where: np.ndarray) -> float:
        """Row i's cost if it sat at coordinates ``where`` (others where they are)."""
        if not len(nb_of[i]):
            return 0.0
        return float((_hop_costs(chip, where[None, :], xy[nb_of[i]]) * nw_of[i]).sum())

    cur = np.array([cost_at(i, xy[i]) for i in range(n + 1)])
    initial = float(cur.sum() / 2)
    full = len(slots) <= FULL_SEARCH_POSITIONS
    passes, window = (PASSES_LARGE, WINDOW_LARGE) if n > LARGE_CORES else (PASSES, WINDOW)
    by_tile: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(slots):
        by_tile.setdefault((p.gx, p.gy), []).append(i)
    for _ in range(passes):
        changed = False
        for u in range(n):
            nb, nw = nb_of[u], nw_of[u]
            if not len(nb):
                continue
            here = int(slot_of[u])
            if full:
                cand = np.arange(len(slots))
            else:
                heavy = nb[np.argsort(-nw, kind="stable")[:4]]
                pick: set[int] = set()
                for gx, gy in [tuple(xy[u, 2:])] + [tuple(xy[o, 2:]) for o in heavy]:
                    for dx in range(-window, window + 1):
                        for dy in range(-window, window + 1):
                            pick.update(by_tile.get((int(gx) + dx, int(gy) + dy), []))
                cand = np.array(sorted(pick), dtype=np.int64)
            # u's cost at every candidate (a swap partner's term is 0: it sits there)
            move = (_hop_costs(chip, slot_xy[cand][:, None, :], xy[nb][None, :, :]) * nw).sum(1)
            delta = move - cur[u]
            others = occupant[cand]
            swap = np.flatnonzero(others >= 0)
            if len(swap):
                here_xy = slot_xy[here]
                vs = others[swap]
                # every partner's cost at u's slot (u's term is 0 there), by segments of the
                # partners' neighbour lists
                lens = indptr[vs + 1] - indptr[vs]
                seg = np.repeat(np.arange(len(vs)), lens)
                idx = np.repeat(indptr[vs] - np.concatenate([[0], np.cumsum(lens)[:-1]]),
                                lens) + np.arange(int(lens.sum()))
                h = np.bincount(seg, weights[idx] * _hop_costs(chip, here_xy[None, :],
                                                                xy[indices[idx]]),
                                minlength=len(vs))
                # the u-v traffic of every partner (nb is sorted: a lookup, not an array
                # over all n cores per step)
                at = np.minimum(np.searchsorted(nb, vs), len(nb) - 1)
                wuv = np.where(nb[at] == vs, nw[at], 0.0)
                d = _hop_costs(chip, here_xy[None, :], slot_xy[cand[swap]])
                delta[swap] = move[swap] + h - (cur[u] + cur[vs] - 2 * wuv * d)
            delta[cand == here] = 0.0
            k = int(np.argmin(delta))
            if delta[k] >= -1e-9 * max(1.0, float(cur[u])):
                continue
            q = int(cand[k])
            v = int(occupant[q])
            moved = [(u, here, q)] + ([(v, q, here)] if v >= 0 else [])
            for row, old, new in moved:  # neighbours' costs follow the move
                if len(nb_of[row]):
                    dc = nw_of[row] * (_hop_costs(chip, slot_xy[new][None, :], xy[nb_of[row]])
                                       - _hop_costs(chip, slot_xy[old][None, :], xy[nb_of[row]]))
                    np.add.at(cur, nb_of[row], dc)
            for row, _, new in moved:
                xy[row] = slot_xy[new]
                slot_of[row] = new
                occupant[new] = row
            if v < 0:
                occupant[here] = -1
            for row, _, _ in moved:  # u's and v's own costs (their mutual edge kept its length)
                cur[row] = cost_at(row, xy[row])
            changed = True
        if not changed:
            break
    final = float(sum(cost_at(i, xy[i]) for i in range(n + 1)) / 2)
    return {core: slots[int(slot_of[row])] for row, core in enumerate(core_order)}, initial, final


def _adjacency(n: int, core_order: list[int], a: np.ndarray, b: np.ndarray,
               w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The undirected traffic between the rows of the placement (row i: ``core_order[i]``,
    row n: the input), as CSR arrays (indptr, neighbour rows ascending, weights): a pair's
    weight is the sum of its two directions; pairs of a core with itself and pairs of no
    positive weight are left out."""
    row_of = np.full(max(core_order, default=-1) + 2, -1, dtype=np.int64)
    row_of[np.asarray(core_order, dtype=np.int64)] = np.arange(n)
    row_of[INPUT] = n  # the last entry: the input
    keep = (np.asarray(a) != np.asarray(b)) & (np.asarray(w) > 0)
    ra, rb, wk = row_of[np.asarray(a)[keep]], row_of[np.asarray(b)[keep]], np.asarray(w)[keep]
    lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
    pairs, inv = np.unique(lo * (n + 1) + hi, return_inverse=True)
    both = np.bincount(inv.reshape(-1), weights=wk, minlength=len(pairs))  # a->b + b->a
    lo, hi = pairs // (n + 1), pairs % (n + 1)
    rows, cols = np.concatenate([lo, hi]), np.concatenate([hi, lo])
    vals = np.concatenate([both, both])
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n + 1))]).astype(np.int64)
    return indptr, cols[order].astype(np.int64), vals[order].astype(np.float64)


def position_of(chip: ChipProfile, system: SystemProfile, chip_index: int, x: int,
                y: int) -> Position:
    """The full position of core (x, y) of the system's chip number ``chip_index``."""
    cx, cy = _serpentine(system.chips_x, system.chips_y)[chip_index]
    return Position(chip_index, cx, cy, x, y, cx * chip.mesh_tiles_x + x // chip.tile_cores_x,
                    cy * chip.mesh_tiles_y + y // chip.tile_cores_y)
