"""Job configuration of ``streamls train``: TOML files, flags on top, the effective file written back.

Precedence, lowest first: the defaults of :class:`JobConfig`, the ``--config`` file, the
flags. The effective configuration (every key resolved, the seed drawn, data paths made
absolute, the block size chosen) is written to the run directory, and ``--resume`` reads
it back, so a resumed run reads the data in the same blocks and ends bitwise equal.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..backends import BACKENDS
from ..errors import ConfigError, closest
from ..hyperparameters import hyperparameters
from ..sources.dataset import NAN_POLICIES
from ..sources.spec import split_spec
from .checkpoint import KEEP_CHECKPOINTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Keys that may differ between a run and its ``--resume``: where and how fast it runs,
#: not what it computes.
RUNTIME_KEYS = frozenset(
    {"backend", "scheduler", "dask_workers", "threads", "memory_limit", "out_dir", "keep_checkpoints"}
)

#: Earlier names of job keys and flags, by the current name they stand for. Both are
#: accepted (old job files and run directories keep working); the effective configuration
#: a run writes uses the current name, which is :func:`streamls.fit`'s keyword.
ALIASES = {"seed": "random_state", "target_col": "target_cols", "chunk_rows": "block_rows"}


def aliases_of(key: str) -> list[str]:
    """The earlier names of job key ``key`` (:data:`ALIASES`): ``["seed"]`` for ``"random_state"``."""
    return [old for old, new in ALIASES.items() if new == key]


def _with_hyperparameters(cls: type) -> type:
    """Add to ``cls``, before :func:`dataclass` reads it, a field per hyperparameter of :class:`~streamls.TrainConfig`.

    Each has the name, annotation and default of TrainConfig's field, and they follow the
    fields of the class body.
    """
    for spec in hyperparameters():
        cls.__annotations__[spec.name] = spec.annotation
        setattr(cls, spec.name, spec.default)
    return cls


@dataclass(frozen=True)
@_with_hyperparameters
class JobConfig:
    """Everything a training job needs; names match the ``train`` flags and :func:`streamls.fit`.

    Besides the attributes below, a job has one per field of :class:`streamls.TrainConfig`,
    with its name, type and default; ``random_state`` is drawn and recorded when unset, so
    every run can be repeated. Job files may also use the earlier names of :data:`ALIASES`.

    Attributes
    ----------
    data : str or None
        Data spec of the inputs, or of a table holding the targets too.
    y : str or None
        Data spec of the targets.
    target_cols : list of int and str, or None
        With ``y`` unset: the target column(s) of the table, by index or name (default: the last).
    out_dir : str or None
        Run directory.
    block_rows : int or None
        Rows per block read (rounded up to whole stored chunks).
    nan_policy : {"error", "drop"}
    backend : {"local", "dask"}
    scheduler : str or None
        Address of a Dask scheduler (implies ``backend = "dask"``).
    dask_workers : int or None
        Workers of a local Dask cluster (implies ``backend = "dask"``).
    threads : int or None
        Cap on BLAS and streamls threads.
    memory_limit : str or None
        Such as ``"4GiB"``; picks the block size and refuses runs that cannot fit.
    keep_checkpoints : int
        Checkpoints kept in the run directory: the newest and those before it.
    """

    data: str | None = None
    y: str | None = None
    target_cols: list[int | str] | None = None
    out_dir: str | None = None
    block_rows: int | None = None
    nan_policy: str = "error"
    backend: str = "local"
    scheduler: str | None = None
    dask_workers: int | None = None
    threads: int | None = None
    memory_limit: str | None = None
    keep_checkpoints: int = KEEP_CHECKPOINTS

    @property
    def uses_dask(self) -> bool:
        """Whether the job runs on Dask: ``backend="dask"``, or a scheduler or worker count is given."""
        return self.backend == "dask" or self.scheduler is not None or self.dask_workers is not None

    def train_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`streamls.TrainConfig`: the job's hyperparameters."""
        return {spec.name: getattr(self, spec.name) for spec in hyperparameters()}


KEYS = tuple(f.name for f in fields(JobConfig))
#: The TOML types a hyperparameter of each kind accepts (ints are accepted where floats are expected).
_KIND_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (float, int), "str": (str,), "seed": (int,)}
#: The TOML types each key accepts.
_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str,),
    "y": (str,),
    "target_cols": (list,),
    "out_dir": (str,),
    "block_rows": (int,),
    "nan_policy": (str,),
    "backend": (str,),
    "scheduler": (str,),
    "dask_workers": (int,),
    "threads": (int,),
    "memory_limit": (str, int),
    "keep_checkpoints": (int,),
    # A hyperparameter the data may choose also takes the string "auto" (TrainConfig checks the value).
    **{spec.name: _KIND_TYPES[spec.kind] + ((str,) if spec.auto else ()) for spec in hyperparameters()},
}
#: Counts, which must be at least 1 (as their flags require).
_COUNTS = frozenset({"block_rows", "dask_workers", "threads", "keep_checkpoints"})
_CHOICES = {
    "nan_policy": NAN_POLICIES,
    "backend": BACKENDS,
    **{spec.name: spec.words for spec in hyperparameters() if spec.choices},
}


def unknown_key_error(key: str, where: str) -> ConfigError:
    """A :class:`ConfigError` naming an unknown key and the closest valid one (or earlier name)."""
    guess = closest(key, [*KEYS, *ALIASES])
    hint = f"did you mean {guess!r}?" if guess else f"valid keys: {', '.join(KEYS)}"
    return ConfigError(f"{where}: unknown key {key!r}; {hint}")


def check_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check key names and value types of a partial configuration; returns it normalised.

    Earlier names (:data:`ALIASES`) become the current ones; messages name the key as given.
    ``target_cols`` may be an int, a column name, or a list of them; it is returned as a list.
    """
    out: dict[str, Any] = {}
    for given, value in values.items():
        key = ALIASES.get(given, given)
        if key not in _TYPES:
            raise unknown_key_error(given, where)
        if key in out:
            old = next(name for name in values if ALIASES.get(name) == key)
            raise ConfigError(f"{where}: keys {key!r} and {old!r} (its earlier name) are the same setting; keep one")
        if key == "target_cols" and isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        ok = isinstance(value, _TYPES[key]) and not isinstance(value, bool)
        if key == "target_cols" and ok:
            ok = bool(value) and all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value)
        if not ok:
            expected = " or ".join(t.__name__ for t in _TYPES[key])
            raise ConfigError(f"{where}: key {given!r} must be {expected}, got {value!r}")
        if key in _COUNTS and value < 1:
            raise ConfigError(f"{where}: key {given!r} must be an int >= 1, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{where}: key {given!r} must be one of {_CHOICES[key]}, got {value!r}")
        out[key] = float(value) if float in _TYPES[key] and isinstance(value, int) else value
    return out


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked key/value pairs of a TOML job file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return check_values(raw, path)


def merged(*layers: Mapping[str, Any]) -> JobConfig:
    """A :class:`JobConfig` from checked layers, later layers overriding earlier ones."""
    values: dict[str, Any] = {}
    for layer in layers:
        values.update(layer)
    return replace(JobConfig(), **values)


def absolute_spec(spec: str) -> str:
    """A data spec whose local path is absolute, so the run can resume from any directory."""
    if os.path.exists(spec):
        return os.path.abspath(spec)
    path, inner = split_spec(spec)
    if "://" in path:
        return spec
    return os.path.abspath(path) + (f":{inner}" if inner is not None else "")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: JobConfig, header: str = "") -> str:
    """The configuration as TOML text (unset keys left out, as TOML has no null)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in asdict(config).items() if value is not None]
    return "\n".join(lines) + "\n"


def changed_keys(stored: JobConfig, given: Mapping[str, Any]) -> list[str]:
    """Keys of ``given`` that would change what a stored run computes."""
    current = asdict(stored)
    return sorted(k for k, v in given.items() if k not in RUNTIME_KEYS and current[k] != v)
