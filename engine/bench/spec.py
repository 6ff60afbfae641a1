"""A bench matrix — methods × backbones × datasets × seeds, with a tuning grid — read from TOML and checked whole
before anything runs.

    [bench]
    name = "ml-latest-small"          # default: the file's stem
    methods = ["id", "kirec"]         # a name is knowledge.method, unless a [method.NAME] table sets it
    backbones = ["sasrec"]
    datasets = ["ml-latest-small"]
    seeds = [1, 2, 3]
    baseline = "id"                   # default "id" when it is a method; gains and p-values are against it

    [config]                          # every cell (RunConfig fields, nested or dotted keys)
    "train.max_train_seconds" = 120

    [method.kirec]                    # cells of one method (also [backbone.NAME], [dataset.NAME])
    "knowledge.embed_text" = "raw"

    [tune]                            # a grid searched on the first seed, per (method, backbone, dataset)
    "train.lr" = [1e-3, 5e-4]

Precedence, lowest first: defaults, [config], [dataset.*], [backbone.*], [method.*], flags (--set), the matrix's
own fields (dataset, backbone, method, seed), the tuning point. Every error is one line naming the file and key.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.choices import BACKBONE_CHOICES, METHOD_CHOICES
from engine.config import ConfigError, RunConfig, flatten_dotted, read_config_file, set_value

TOP_LEVEL = ("bench", "config", "method", "backbone", "dataset", "tune")
BENCH_KEYS = ("name", "methods", "backbones", "datasets", "seeds", "baseline")
DEFAULT_BASELINE = "id"
# Fields the matrix itself sets: a table that set them would silently fight the matrix.
MATRIX_FIELDS = {
    "data.dataset": "bench.datasets",
    "model.backbone": "bench.backbones",
    "train.seed": "bench.seeds",
    "db": "--db",
    "name": "the bench (cells are named after their place in the matrix)",
}


@dataclass(frozen=True)
class Cell:
    """One training run of the matrix: a group (dataset, backbone, method), a seed and a tuning point."""

    method: str
    backbone: str
    dataset: str
    seed: int
    setting: tuple[tuple[str, Any], ...] = ()  # the tuning grid point, as sorted (dotted key, value) pairs

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.dataset, self.backbone, self.method)

    def label(self) -> str:
        tuned = "".join(f" {k}={v}" for k, v in self.setting)
        return f"{self.method} {self.backbone} {self.dataset} seed {self.seed}{tuned}"


@dataclass(frozen=True)
class BenchSpec:
    name: str
    source: str  # the TOML file, or "flags"
    methods: tuple[str, ...]
    backbones: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    baseline: str | None
    layers: tuple[tuple[str, dict[str, Any]], ...] = ()  # (source, dotted overrides) for every cell, lowest first
    per_method: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_backbone: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)  # --set overrides
    tune: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # sorted (dotted key, candidate values)

    def groups(self) -> list[tuple[str, str, str]]:
        return [(d, b, m) for d in self.datasets for b in self.backbones for m in self.methods]

    def grid(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every tuning point (the one empty point when there is no [tune])."""
        keys = [k for k, _ in self.tune]
        return [tuple(zip(keys, values)) for values in itertools.product(*(v for _, v in self.tune))]

    def cell(self, group: tuple[str, str, str], seed: int, setting: tuple[tuple[str, Any], ...] = ()) -> Cell:
        dataset, backbone, method = group
        return Cell(method, backbone, dataset, seed, setting)

    def config_for(self, cell: Cell, db: str | Path) -> RunConfig:
        cfg = RunConfig()
        for source, values in self.layers:
            _apply(cfg, values, source)
        _apply(cfg, self.per_dataset.get(cell.dataset, {}), f"{self.source}: [dataset.{cell.dataset}]")
        _apply(cfg, self.per_backbone.get(cell.backbone, {}), f"{self.source}: [backbone.{cell.backbone}]")
        method_table = self.per_method.get(cell.method, {})
        if "knowledge.method" not in method_table:
            set_value(cfg, "knowledge.method", cell.method, f"{self.source}: bench.methods")
        _apply(cfg, method_table, f"{self.source}: [method.{cell.method}]")
        _apply(cfg, self.flags, "--set")
        set_value(cfg, "data.dataset", cell.dataset, f"{self.source}: bench.datasets")
        set_value(cfg, "model.backbone", cell.backbone, f"{self.source}: bench.backbones")
        set_value(cfg, "train.seed", cell.seed, f"{self.source}: bench.seeds")
        _apply(cfg, dict(cell.setting), f"{self.source}: [tune]")
        cfg.db = str(db)
        cfg.name = f"bench {self.name}: {cell.label()}"
        return cfg


def _apply(cfg: RunConfig, values: Mapping[str, Any], source: str) -> None:
    for key, value in values.items():
        set_value(cfg, key, value, f"{source}: {key}")


def load_spec(
    path: str | Path | None, overrides: Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None
) -> BenchSpec:
    """The bench in `path` (None: flags only), with `overrides` replacing [bench] keys (e.g. seeds from --seeds)
    and `flags` (dotted config fields from --set) above every table. Raises ConfigError naming file and key."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    source = str(path) if path is not None else "flags"
    unknown = [k for k in data if k not in TOP_LEVEL]
    if unknown:
        raise ConfigError(f"{source}: unknown table or key '{unknown[0]}' (expected {', '.join(TOP_LEVEL)})")
    bench = _table(data, "bench", source)
    listed = dict(bench)  # as the file has it: --methods etc. may choose a subset of what it lists
    for key, value in (overrides or {}).items():
        if value is not None:
            bench[key] = value
    bad = [k for k in bench if k not in BENCH_KEYS]
    if bad:
        raise ConfigError(f"{source}: unknown key 'bench.{bad[0]}' (expected {', '.join(BENCH_KEYS)})")

    methods = _names(bench, "methods", source)
    backbones = _names(bench, "backbones", source, default=("sasrec",))
    datasets = _names(bench, "datasets", source)
    seeds = _seeds(bench, source)
    per_method = _named_tables(data, "method", methods, source, _file_names(listed, "methods"))
    per_backbone = _named_tables(data, "backbone", backbones, source, _file_names(listed, "backbones"))
    per_dataset = _named_tables(data, "dataset", datasets, source, _file_names(listed, "datasets"))
    for method in methods:
        if "knowledge.method" not in per_method.get(method, {}) and method not in METHOD_CHOICES:
            raise ConfigError(
                f"{source}: bench.methods: '{method}' is not a method ({', '.join(METHOD_CHOICES)}) "
                f"and no [method.{method}] table sets knowledge.method"
            )
    for backbone in backbones:
        if backbone not in BACKBONE_CHOICES:
            raise ConfigError(f"{source}: bench.backbones: '{backbone}' is not one of {', '.join(BACKBONE_CHOICES)}")
    baseline = bench.get("baseline", DEFAULT_BASELINE if DEFAULT_BASELINE in methods else None)
    if baseline is not None and baseline not in methods and baseline in _file_names(listed, "methods"):
        baseline = None  # the file's baseline, left out by --methods: a table without gains, not an error
    if baseline is not None and baseline not in methods:
        raise ConfigError(f"{source}: bench.baseline: '{baseline}' is not one of bench.methods ({', '.join(methods)})")

    config = _overrides(_table(data, "config", source), f"{source}: [config]", forbid_method=True)
    flag_values = _overrides(dict(flags or {}), "--set", forbid_method=True)
    tune = _tune(_table(data, "tune", source), source)
    name = bench.get("name") or (Path(path).stem if path is not None else "bench")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: bench.name: expected a string, got {name!r}")
    spec = BenchSpec(
        name=name,
        source=source,
        methods=methods,
        backbones=backbones,
        datasets=datasets,
        seeds=seeds,
        baseline=baseline,
        layers=((f"{source}: [config]", config),),
        per_method=per_method,
        per_backbone=per_backbone,
        per_dataset=per_dataset,
        flags=flag_values,
        tune=tune,
    )
    # Build every cell's config now: a bad value anywhere fails before the first cell trains.
    for group in spec.groups():
        for setting in spec.grid():
            spec.config_for(spec.cell(group, seeds[0], setting), "runs.db")
    return spec


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a table ([{key}])")
    return dict(value)


def _names(bench: Mapping[str, Any], key: str, source: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    value = bench.get(key, default)
    if value is None:
        raise ConfigError(f"{source}: bench.{key}: missing (a list of names)")
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: bench.{key}: expected a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: bench.{key}: a name appears twice in {list(value)!r}")
    return tuple(value)


def _seeds(bench: Mapping[str, Any], source: str) -> tuple[int, ...]:
    value = bench.get("seeds", [42])
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{source}: bench.seeds: expected integers, got {bench['seeds']!r}") from None
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{source}: bench.seeds: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: bench.seeds: a seed appears twice in {list(value)!r}")
    return tuple(value)


def _file_names(bench: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = bench.get(key)
    return tuple(value) if isinstance(value, list) else ()


def _named_tables(
    data: Mapping[str, Any], kind: str, names: tuple[str, ...], source: str, unchosen: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """The [kind.NAME] tables of the chosen names; a table of a name the file lists but a flag left out is skipped."""
    tables = _table(data, kind, source)
    out = {}
    for name, values in tables.items():
        if name in unchosen and name not in names:
            continue
        if name not in names:
            raise ConfigError(f"{source}: [{kind}.{name}]: '{name}' is not one of bench.{kind}s ({', '.join(names)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{kind}.{name}] must be a table of config fields")
        out[name] = _overrides(dict(values), f"{source}: [{kind}.{name}]", forbid_method=kind != "method")
    return out


def _overrides(values: dict[str, Any], where: str, forbid_method: bool) -> dict[str, Any]:
    flat = flatten_dotted(values)
    for key in flat:
        if key in MATRIX_FIELDS:
            raise ConfigError(f"{where}: {key} is set by the matrix ({MATRIX_FIELDS[key]}), not here")
        if forbid_method and key == "knowledge.method":
            raise ConfigError(f"{where}: knowledge.method is set by bench.methods (or a [method.NAME] table), not here")
    probe = RunConfig()
    _apply(probe, flat, where)  # unknown fields and bad types fail here, named
    return flat


def _tune(table: dict[str, Any], source: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    flat = flatten_dotted(table)
    where = f"{source}: [tune]"
    out = []
    for key in sorted(flat):
        values = flat[key]
        if key in MATRIX_FIELDS or key == "knowledge.method":
            raise ConfigError(f"{where}: {key} cannot be tuned (the matrix sets it)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {key}: expected a non-empty list of candidate values, got {values!r}")
        probe = RunConfig()
        for value in values:
            set_value(probe, key, value, f"{where}: {key}")
        out.append((key, tuple(values)))
    return tuple(out)
