"""``network.h5``: the IR on disk (docs/ir.md, schema version 4; versions 1 to 3 are still read).

```
/                attrs: format = "sakd-ir", schema_version = 3 or 4, target (name), time_steps (absent:
                 the network does not fix T), digest (SHA-256 of the network, Network.digest),
                 schedule ("sample" | "free"), limits ("hardware" | "lava")
/target          attrs: every TargetSpec field (the spec is read from here, validated)
/metadata        attr json = JSON text of Network.metadata
/input           attrs: name, shape, encoding, bits, scale
/populations/NNN attrs: name, shape, role, scale, origin, model (a sakd.hardware.neurons name),
                 message_bits; group neuron: the model's integer parameters as attrs, its arrays
                 as datasets
/projections/NNN attrs: name, source, target, kind, weight_exp, delay, stride, padding, dilation,
                 groups, port; dataset weight (int16)
```

Version 4 added the projection kind ``upsample``. A file is written with the lowest schema that
holds its network: 4 when it has an ``upsample`` projection (a sakd that reads only schema 3
then refuses it as "written by a newer sakd" instead of failing on an unknown kind), else 3, so
that every other network stays readable by earlier versions. A schema-3 file with an
``upsample`` projection is damage and is refused.

Version 2 had no schedule, limits, message_bits or port (a sample network within the hardware's
limits; the model's message bits; port ``a_in``).

Version 1 (sakd 0.1): populations held ``du, dv, vth, bias_exp`` attrs and a ``bias_mant``
dataset (a CUBA-LIF, the only model then) and T was ``metadata["time_steps"]``.

``NNN`` is a zero-padded index (at least 3 digits) that keeps the order. Every dataset with more
than one element carries an HDF5 Fletcher-32 checksum (h5py raises on a damaged chunk) and the
root's ``digest`` covers everything: the reader rebuilds the network and compares, so a file
that was damaged or edited is an error, never a silently different network. Writing is atomic
(``atomic_path``) and the file is sealed (``sakd.hardware.integrity``: a SHA-256 trailer checked
before HDF5 parses the file). Every problem with a file raises :class:`NetworkFileError` naming
the file and the HDF5 key. h5py and numpy only; Python 3.10 compatible.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .atomic import atomic_path
from .errors import MissingFileError, SakdError
from .integrity import IntegrityError, seal, sealed_kind
from .ir import MAX_TIME_STEPS, Input, IRError, Network, Population, Projection
from .neurons import CubaLif, neuron_model
from .target import TARGETS, TargetError, TargetSpec

FORMAT = "sakd-ir"
#: the newest schema this sakd reads and writes
SCHEMA_VERSION = 4
#: projection kinds by the schema that introduced them (files use the lowest that holds them)
KIND_SCHEMA = {"upsample": 4}

#: weight arrays with at least this many entries are stored gzip-compressed (transparent to readers)
_COMPRESS_MIN = 4096


class NetworkFileError(IRError):
    """A ``network.h5`` that cannot be read: not HDF5, another format, a newer schema, a missing
    key, or values that fail validation. The message names the file and the key."""


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _index_width(n: int) -> int:
    return max(3, len(str(max(n - 1, 0))))


def _dataset(group: h5py.Group, key: str, data: np.ndarray) -> None:
    """A dataset with a Fletcher-32 checksum (chunked; HDF5 cannot checksum a scalar dataset,
    which the file's digest covers instead), gzip-compressed when large."""
    data = np.asarray(data)
    if data.size <= 1 or data.ndim == 0:
        group.create_dataset(key, data=data)
        return
    extra = {"compression": "gzip", "compression_opts": 4} if data.size >= _COMPRESS_MIN else {}
    group.create_dataset(key, data=data, fletcher32=True, **extra)


def write_network(network: Network, path: str | os.PathLike[str]) -> Path:
    """Write ``network`` to ``path`` atomically (the old file, if any, stays until the new one is
    complete). Returns the path."""
    if not isinstance(network, Network):
        raise TypeError(f"write_network needs a Network, got {type(network).__name__}")
    path = Path(path)
    spec = network.target
    with atomic_path(path) as tmp:
        _write(network, spec, tmp)
        seal(tmp, "ir")
    return path


def schema_for(network: Network) -> int:
    """The lowest schema that holds ``network``: 4 with an ``upsample`` projection, else 3."""
    return max([3, *(KIND_SCHEMA.get(p.kind, 3) for p in network.projections)])


def _write(network: Network, spec: TargetSpec, tmp: Path) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = schema_for(network)
        f.attrs["target"] = spec.name
        if network.time_steps is not None:
            f.attrs["time_steps"] = int(network.time_steps)
        f.attrs["digest"] = network.digest()
        f.attrs["schedule"] = network.schedule
        f.attrs["limits"] = network.limits
        tgt = f.create_group("target")
        for key, value in spec.as_dict().items():
            tgt.attrs[key] = value
        f.create_group("metadata").attrs["json"] = json.dumps(network.metadata, sort_keys=True)
        inp = f.create_group("input")
        inp.attrs["name"] = network.input.name
        inp.attrs["shape"] = np.asarray(network.input.shape, dtype=np.int64)
        inp.attrs["encoding"] = network.input.encoding
        inp.attrs["bits"] = network.input.bits
        inp.attrs["scale"] = float(network.input.scale)

        pops = f.create_group("populations")
        width = _index_width(len(network.populations))
        for i, pop in enumerate(network.populations):
            g = pops.create_group(f"{i:0{width}d}")
            g.attrs["name"] = pop.name
            g.attrs["shape"] = np.asarray(pop.shape, dtype=np.int64)
            g.attrs["role"] = pop.role
            g.attrs["scale"] = float(pop.scale)
            g.attrs["origin"] = pop.origin
            g.attrs["model"] = pop.neuron.model
            g.attrs["message_bits"] = int(pop.message_bits)
            attrs, arrays = pop.neuron.to_file()
            neuron = g.create_group("neuron")
            for key, value in attrs.items():
                neuron.attrs[key] = int(value)
            for key, value in arrays.items():
                _dataset(neuron, key, value.astype(np.int32))

        projs = f.create_group("projections")
        width = _index_width(len(network.projections))
        for i, proj in enumerate(network.projections):
            g = projs.create_group(f"{i:0{width}d}")
            for key in ("name", "source", "target", "kind", "port"):
                g.attrs[key] = getattr(proj, key)
            for key in ("weight_exp", "delay", "groups"):
                g.attrs[key] = int(getattr(proj, key))
            for key in ("stride", "padding", "dilation"):
                g.attrs[key] = np.asarray(getattr(proj, key), dtype=np.int64)
            _dataset(g, "weight", proj.weight.astype(np.int16))  # validated: within [-256, 255]


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one open file; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> NetworkFileError:
        return NetworkFileError(f"{self.path}: {key}: {message}")

    def group(self, parent: h5py.Group, key: str) -> h5py.Group:
        where = _join(parent.name, key)
        if key not in parent:
            raise self.error(where, "missing group")
        obj = parent[key]
        if not isinstance(obj, h5py.Group):
            raise self.error(where, "is not a group")
        return obj

    def attr(self, group: h5py.Group, key: str) -> Any:
        if key not in group.attrs:
            raise self.error(f"{group.name} attr '{key}'", "missing attribute")
        return group.attrs[key]

    def str_attr(self, group: h5py.Group, key: str) -> str:
        value = self.attr(group, key)
        if isinstance(value, np.ndarray) and value.shape == (1,):
            value = value[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if not isinstance(value, str):
            raise self.error(
                f"{group.name} attr '{key}'", f"expected a string, got {_plain(value)!r}"
            )
        return value

    def int_attr(self, group: h5py.Group, key: str) -> int:
        value = self.attr(group, key)
        if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
            value = value.reshape(-1)[0]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise self.error(
                f"{group.name} attr '{key}'", f"expected an integer, got {_plain(value)!r}"
            )
        return int(value)

    def float_attr(self, group: h5py.Group, key: str) -> float:
        value = self.attr(group, key)
        if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
            value = value.reshape(-1)[0]
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise self.error(
                f"{group.name} attr '{key}'", f"expected a number, got {_plain(value)!r}"
            )
        return float(value)

    def ints_attr(self, group: h5py.Group, key: str) -> tuple[int, ...]:
        value = np.asarray(self.attr(group, key))
        if value.dtype.kind not in "iu":
            raise self.error(
                f"{group.name} attr '{key}'", f"expected integers, got {_plain(value)!r}"
            )
        return tuple(int(v) for v in value.reshape(-1))

    def dataset(self, group: h5py.Group, key: str) -> np.ndarray:
        where = _join(group.name, key)
        if key not in group:
            raise self.error(where, "missing dataset")
        obj = group[key]
        if not isinstance(obj, h5py.Dataset):
            raise self.error(where, "is not a dataset")
        data = obj[()]
        arr = np.asarray(data)
        if arr.dtype.kind not in "iu":
            raise self.error(where, f"expected an integer dataset, got dtype {arr.dtype}")
        return arr

    def indexed(self, group: h5py.Group) -> list[h5py.Group]:
        keys = list(group.keys())
        bad = [k for k in keys if not k.isdigit()]
        if bad:
            raise self.error(_join(group.name, bad[0]), "unexpected key (entries are numbered NNN)")
        keys.sort(key=int)
        if [int(k) for k in keys] != list(range(len(keys))):
            raise self.error(group.name, f"entries {keys} are not numbered 0..{len(keys) - 1}")
        return [self.group(group, k) for k in keys]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, for messages."""
    return value.tolist() if hasattr(value, "tolist") else value


def _join(parent: str, key: str) -> str:
    return f"{parent.rstrip('/')}/{key}"


def open_hdf5(path: Path, error: type[Exception], kind: str) -> h5py.File:
    """Open ``path`` read-only. :class:`MissingFileError` ("no such ``kind``") when it is
    missing, ``error`` when it is not a readable HDF5 file."""
    if not path.exists():
        raise MissingFileError(f"{path}: no such {kind}")
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {kind}")
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise error(f"{path}: not a readable HDF5 file (truncated or another format?): {exc}") from exc


def read_network(path: str | os.PathLike[str]) -> Network:
    """Read and validate a ``network.h5`` (schema 1, 2 or 3). Raises :class:`MissingFileError` for
    a missing file and :class:`NetworkFileError` for everything else that is wrong with it:
    h5py's own errors on damaged metadata or checksums included."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such network file")
    try:  # before the HDF5 library parses anything (it can hang on some damaged metadata)
        kind = sealed_kind(path)
    except IntegrityError as exc:
        raise NetworkFileError(str(exc)) from exc
    if kind not in (None, "ir"):
        raise NetworkFileError(f"{path}: a {kind} file sakd wrote, not an IR file (network.h5)")
    handle = open_hdf5(path, NetworkFileError, "network file")
    try:
        with handle as f:
            return _read(_Reader(path), f)
    except SakdError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        # truncated datasets and damaged HDF5 metadata surface only when read
        raise NetworkFileError(f"{path}: the HDF5 file is damaged or truncated: "
                               f"{type(exc).__name__}: {exc}") from exc


def _read(r: _Reader, f: h5py.File) -> Network:
    if "format" not in f.attrs:
        raise r.error(
            "/ attr 'format'", f"missing attribute: not a sakd IR file (format {FORMAT!r})"
        )
    fmt = r.str_attr(f, "format")
    if fmt != FORMAT:
        raise r.error("/ attr 'format'", f"is {fmt!r}, not {FORMAT!r}: not a sakd IR file")
    version = r.int_attr(f, "schema_version")
    if version > SCHEMA_VERSION:
        raise r.error(
            "/ attr 'schema_version'",
            f"written by a newer sakd (schema {version} > {SCHEMA_VERSION}); upgrade sakd",
        )
    if version < 1:
        raise r.error("/ attr 'schema_version'", f"invalid schema version {version}")
    target_name = r.str_attr(f, "target")
    tgt = r.group(f, "target")
    fields: dict[str, Any] = {}
    for fld in dataclasses.fields(TargetSpec):
        fields[fld.name] = (r.str_attr(tgt, fld.name) if fld.type in ("str", str)
                            else r.int_attr(tgt, fld.name))
    try:
        spec = TargetSpec.from_mapping(fields)
    except TargetError as exc:
        raise r.error("/target", str(exc)) from exc
    if spec.name != target_name:
        raise r.error("/target attr 'name'", f"is {spec.name!r} but / attr 'target' is "
                                             f"{target_name!r}: the file is inconsistent")
    known = TARGETS.get(spec.name)
    if known is not None and known != spec:
        diff = next(k for k, v in known.as_dict().items() if getattr(spec, k) != v)
        raise r.error(f"/target attr '{diff}'", f"is {getattr(spec, diff)!r} but target "
                                                f"'{spec.name}' has {getattr(known, diff)!r}; the "
                                                f"file was written for a different chip "
                                                f"specification")

    meta = r.group(f, "metadata")
    try:
        metadata = json.loads(r.str_attr(meta, "json"))
    except json.JSONDecodeError as exc:
        raise r.error("/metadata attr 'json'", f"not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise r.error("/metadata attr 'json'", "must hold a JSON object")
    if version >= 2:
        time_steps = r.int_attr(f, "time_steps") if "time_steps" in f.attrs else None
    else:  # schema 1 kept T in the metadata; now it is the network's own field
        time_steps = metadata.pop("time_steps", None)
        if time_steps is not None and (isinstance(time_steps, bool) or not isinstance(time_steps, int)
                                       or not 1 <= time_steps <= MAX_TIME_STEPS):
            raise r.error("/metadata attr 'json'", f"time_steps {time_steps!r} is not a positive "
                                                   f"integer of at most {MAX_TIME_STEPS}")

    keys: dict[str, str] = {}  # node name -> HDF5 path, to name the key in validation errors

    def build(key: str, factory: Any, **kwargs: Any) -> Any:
        try:
            node = factory(**kwargs)
        except IRError as exc:
            raise NetworkFileError(f"{r.path}: {key}: {exc}", node=exc.node) from exc
        keys[node.name] = key
        return node

    g = r.group(f, "input")
    inp = build(
        "/input",
        Input,
        name=r.str_attr(g, "name"),
        shape=r.ints_attr(g, "shape"),
        encoding=r.str_attr(g, "encoding"),
        bits=r.int_attr(g, "bits"),
        scale=r.float_attr(g, "scale"),
    )
    populations = []
    for g in r.indexed(r.group(f, "populations")):
        neuron = _read_neuron(r, g, version)
        populations.append(
            build(
                g.name,
                Population,
                name=r.str_attr(g, "name"),
                shape=r.ints_attr(g, "shape"),
                neuron=neuron,
                role=r.str_attr(g, "role"),
                scale=r.float_attr(g, "scale"),
                origin=r.str_attr(g, "origin"),
                message_bits=r.int_attr(g, "message_bits") if version >= 3 else None,
            )
        )
    projections = []
    for g in r.indexed(r.group(f, "projections")):
        kind = r.str_attr(g, "kind")
        if KIND_SCHEMA.get(kind, 0) > version:
            raise r.error(f"{g.name} attr 'kind'",
                          f"is {kind!r}, a kind of schema {KIND_SCHEMA[kind]}, but the file says "
                          f"schema {version}: the file is inconsistent (damaged or edited)")
        projections.append(
            build(
                g.name,
                Projection,
                name=r.str_attr(g, "name"),
                source=r.str_attr(g, "source"),
                target=r.str_attr(g, "target"),
                kind=kind,
                weight=r.dataset(g, "weight"),
                weight_exp=r.int_attr(g, "weight_exp"),
                delay=r.int_attr(g, "delay"),
                stride=r.ints_attr(g, "stride"),
                padding=r.ints_attr(g, "padding"),
                dilation=r.ints_attr(g, "dilation"),
                groups=r.int_attr(g, "groups"),
                port=r.str_attr(g, "port") if version >= 3 else "a_in",
            )
        )
    try:
        network = Network(
            input=inp,
            populations=tuple(populations),
            projections=tuple(projections),
            target=spec,
            metadata=metadata,
            time_steps=time_steps,
            schedule=r.str_attr(f, "schedule") if version >= 3 else "sample",
            limits=r.str_attr(f, "limits") if version >= 3 else "hardware",
        )
    except IRError as exc:
        key = keys.get(exc.node or "", "/")
        raise NetworkFileError(f"{r.path}: {key}: {exc}", node=exc.node) from exc
    if version >= 2:
        stored = r.str_attr(f, "digest")
        if stored != network.digest():
            raise r.error("/ attr 'digest'", "does not match the file's contents: the file was "
                                             "damaged or edited after sakd wrote it; re-export it")
    return network


def _read_neuron(r: _Reader, g: h5py.Group, version: int) -> Any:
    """The population's neuron model: schema 2 names it and holds its parameters in ``neuron/``;
    schema 1 populations were CUBA-LIF with the parameters on the population itself."""
    try:
        if version < 2:
            return CubaLif(du=r.int_attr(g, "du"), dv=r.int_attr(g, "dv"), vth=r.int_attr(g, "vth"),
                           bias_mant=r.dataset(g, "bias_mant"), bias_exp=r.int_attr(g, "bias_exp"))
        cls = neuron_model(r.str_attr(g, "model"))
        params = r.group(g, "neuron")
        values: dict[str, Any] = {key: r.int_attr(params, key) for key in params.attrs}
        for key in params:
            values[key] = r.dataset(params, key)
        return cls.from_file(values)
    except NetworkFileError:
        raise
    except IRError as exc:
        raise NetworkFileError(f"{r.path}: {g.name}: {exc}") from exc
