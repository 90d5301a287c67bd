"""The reader fuzz suite: seeded mutants of the IR, NIR and netx files sakd writes, through every
reader and ``sakd inspect``: only domain errors (``SakdError``), within a time limit per case,
and never a silent change of meaning (tests/robustness/fuzz.py says what each outcome is)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

import fuzz
import random_snn

from sakd.formats.netx import write_netx
from sakd.formats.nir import write_nir
from sakd.hardware.netfile import write_network

PER_KIND = 12  # 12 mutants x 6 kinds x 3 formats = 216 cases


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    net = random_snn.lowered("test_convnet", (1, 8, 8))
    files = {"ir": write_network(net, folder / "network.h5"),
             "nir": write_nir(net, folder / "network.nir"),
             "netx": write_netx(net, folder / "network.netx.h5")}
    original = write_network(net, folder / "original.h5")
    return list(fuzz.run(files, original, folder, PER_KIND))


def test_every_mutant_is_refused_or_unchanged(outcomes):
    bad = [o for o in outcomes if o.read not in fuzz.GOOD or o.inspect not in fuzz.GOOD]
    print(fuzz.tally(outcomes))
    assert not bad, "\n".join(f"{o.fmt} {o.kind} #{o.index}: read {o.read}, inspect {o.inspect}: "
                              f"{o.detail}" for o in bad[:20])


def test_the_suite_covers_every_kind_and_format(outcomes):
    assert len(outcomes) == PER_KIND * len(fuzz.KINDS) * 3
    assert {o.fmt for o in outcomes} == {"ir", "nir", "netx"}
    # most mutants change something that matters: the readers refuse them
    assert sum(o.read == "error" for o in outcomes) > 0.5 * len(outcomes)


def test_a_sealed_file_is_refused_before_hdf5_parses_it(tmp_path):
    """The mutant that once hung the HDF5 library (a flipped bit in the metadata of an IR file,
    reading the root attribute 'format' never returned) is refused by the seal."""
    from sakd.errors import SakdError
    from sakd.hardware.integrity import TRAILER_BYTES
    from sakd.hardware.netfile import read_network

    net = random_snn.lowered("test_convnet", (1, 8, 8))
    path = write_network(net, tmp_path / "network.h5")
    data = bytearray(path.read_bytes())
    for position in (100, len(data) // 2, len(data) - TRAILER_BYTES - 1):
        bad = tmp_path / f"flip{position}.h5"
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        bad.write_bytes(bytes(flipped))
        with pytest.raises(SakdError, match="do not match the seal"):
            read_network(bad)
