"""Quality gates: ``losscli check GATES`` runs several losses on several files, each against its bounds.

A gate file is TOML, an array of tables ``[[check]]``::

    [[check]]
    name = "classifier"                 # unique; --only/--skip and the reports use it
    loss = "cross-entropy"              # a losscli command name
    input = "classification/logits.npy" # the loss's files by their names (as in `losscli list`) ...
    target = "classification/labels.csv"
    label_smoothing = 0.1               # loss options under their compute()/torch keyword names
    max = 1.2                           # bounds: max, min, max_increase, max_increase_pct

    [[check]]
    name = "ranking"
    loss = "margin-ranking"
    files = ["margin/scores1.npy", "margin/scores2.npy", "margin/rank_target.csv"]  # ... or in torch order
    max_increase_pct = 5               # against the baseline (a report of an earlier run)

Two kinds of mistakes, two outcomes. The gate file's form (TOML syntax, keys, types, losses, names,
bounds) is checked before anything runs: any mistake raises :class:`GateError`. Inputs are read check by
check: a missing file, shapes that do not fit or values outside a loss's domain make that one check's
status ``error``, and the other checks still run.

Each check's value is judged by :func:`losscli.judge.judge`, the judge of the loss commands' thresholds too.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from .api import Engine, NanPolicy, Outputs, Streaming, compute_each
from .backends import Backend
from .errors import LossCliError
from .io import Loader, parse_spec
from .io.files import read_text
from .io.remote import Store, check_options, is_url, join
from .judge import BOUNDS, REGRESSION, judge, number_text
from .losses import CATALOG, LossSpec
from .reduction import Reduction

if TYPE_CHECKING:
    from .engine.accumulators import Hist

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib  # type: ignore[no-redef]

SCHEMA_VERSION = 1  # of the JSON report (losscli/report.schema.json); bump on an incompatible change


class GateError(LossCliError):
    """The gate file, a baseline report or an ``only``/``skip`` name is invalid: no check runs."""


class Status(str, enum.Enum):
    passed = "pass"
    failed = "fail"
    error = "error"
    skipped = "skipped"


@dataclass(frozen=True)
class InputRef:
    """One file of a check: as written in the gate file, and resolved against the gate file's folder."""

    role: str  # "input", "target", "weight", ...
    spec: str | None  # "classification/labels.csv:label" as written; None for a number
    resolved: str | None  # what the Loader reads: "samples/classification/labels.csv:label"
    number: float | None = None  # gaussian-nll's var given as a number

    @property
    def path(self) -> str | None:
        return None if self.resolved is None else parse_spec(self.resolved)[0]


@dataclass(frozen=True)
class Stats:
    """A check's statistics (docs/statistics.md): ``compare_to`` the accepted model's first file, whose paired
    test at ``confidence`` the regression bounds become; groups (``by`` a label file, or ``by_class``) that
    ``max`` and ``min`` apply to one by one; an interval at ``ci``; the bootstrap's ``resamples`` and ``seed``."""

    compare_to: InputRef | None = None
    confidence: float = 0.95
    by: InputRef | None = None
    by_class: bool = False
    ci: float | None = None
    resamples: int = 1000
    seed: int = 0

    @property
    def keys(self) -> dict[str, Any]:
        """The statistics the gate file gave, as its keys say them (for the report)."""
        found: dict[str, Any] = {}
        if self.compare_to is not None:
            found.update(compare_to=self.compare_to.spec, confidence=self.confidence)
        if self.by is not None:
            found["by"] = self.by.spec
        if self.by_class:
            found["by_class"] = True
        if self.ci is not None:
            found["ci"] = self.ci
        if found:
            found.update(resamples=self.resamples, seed=self.seed)
        return found


@dataclass(frozen=True)
class Check:
    """One ``[[check]]``, validated."""

    index: int  # 1-based position in the gate file
    name: str
    loss: LossSpec
    files: tuple[InputRef, ...]  # the loss's files, torch's order
    extras: tuple[InputRef, ...]  # weight, pos_weight, mask, optional files, when given
    reduction: Reduction
    backend: Backend
    nan_policy: NanPolicy
    broadcast: bool
    options: dict[str, Any]  # the loss options given (the rest take their defaults)
    bounds: dict[str, float]  # the bounds given: max, min, max_increase, max_increase_pct
    strict: bool = False  # values torch computes with but the loss does not expect: an error, not a warning
    stats: Stats = field(default_factory=lambda: Stats())  # compare_to, by, by_class, ci

    @property
    def refs(self) -> tuple[InputRef, ...]:
        """Every file the check reads: the loss's, the extra ones, and its statistics' (compare_to, by)."""
        return (*self.files, *self.extras, *(r for r in (self.stats.compare_to, self.stats.by) if r is not None))

    @property
    def parameters(self) -> dict[str, Any]:
        """Every loss option, with its default where the gate file gives none (JSON-ready)."""
        merged = {**self.loss.defaults(), **self.options}
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in merged.items()}


@dataclass(frozen=True)
class BaselineEntry:
    value: float | None  # None: that run has no value for the check (it errored or was skipped)
    loss: str
    reduction: str | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True)
class Baseline:
    """The report of an earlier run (``--baseline``): its values by check name."""

    path: str
    created: str | None
    checks: dict[str, BaselineEntry]

    def value_for(self, check: Check) -> tuple[float | None, str | None]:
        """The baseline value to compare with, or None and why there is none."""
        entry = self.checks.get(check.name)
        if entry is None:
            return None, "not in the baseline"
        if entry.loss != check.loss.name:
            return None, f"the baseline is for loss {entry.loss}, not {check.loss.name}"
        if entry.reduction is not None and entry.reduction != check.reduction.value:
            return None, f"the baseline used reduction {entry.reduction}, not {check.reduction.value}"
        if entry.parameters is not None:
            changed = [f"{k} {entry.parameters.get(k)!r} -> {v!r}" for k, v in check.parameters.items()
                       if k in entry.parameters and entry.parameters[k] != v]
            if changed:
                return None, f"the baseline used other options ({', '.join(changed)})"
        if entry.value is None or not math.isfinite(entry.value):
            return None, "the baseline has no finite value for it"
        return entry.value, None


@dataclass(frozen=True)
class GroupOutcome:
    """One group of a check with ``by`` or ``by_class``: its value as printed, and the bounds it failed."""

    name: str
    count: int
    printed: str
    failed: list[str]
    reasons: list[str]
    ci: Any = None

    @property
    def status(self) -> Status:
        return Status.failed if self.failed else Status.passed


@dataclass
class Outcome:
    """What one check gave."""

    check: Check
    status: Status
    value: float | None = None  # the value as printed (float(str(...)) of the loss's dtype)
    printed: str | None = None  # the value exactly as the loss commands print it
    dtype: str | None = None
    baseline: float | None = None  # the baseline value compared with
    no_baseline: str | None = None  # why a check with a regression bound had no baseline value
    delta: float | None = None  # value - baseline
    delta_pct: float | None = None  # 100 * delta / |baseline| (None for a baseline of 0)
    failed: list[str] = field(default_factory=list)  # what failed: "nan", "max", "min", "max_increase", ...
    reasons: list[str] = field(default_factory=list)  # why: a line per failed bound, or the error
    error_type: str | None = None  # the error's class name ("InputError")
    notes: list[str] = field(default_factory=list)  # "no baseline (not in the baseline): ... not checked"
    warnings: list[str] = field(default_factory=list)  # the loss's own warnings
    inputs: list[dict[str, Any]] = field(default_factory=list)  # role, file, sha256, shape, dtype
    seconds: float = 0.0
    ci: Any = None  # the value's interval (losscli.engine.bootstrap.Interval), with ci
    comparison: Any = None  # the paired test against compare_to (losscli.compare.Comparison)
    groups: list[GroupOutcome] = field(default_factory=list)  # each group's value and verdict, with by/by_class
    hist: Hist | None = None  # the histogram of the per-sample losses, when check() was asked for it (hist_bins)

    @property
    def message(self) -> str | None:
        return "; ".join(self.reasons) or None


@dataclass
class Run:
    """Every check of a gate file, in file order (skipped ones included)."""

    gate_file: str
    created: datetime
    outcomes: list[Outcome]
    baseline: Baseline | None
    seconds: float

    def count(self, status: Status) -> int:
        return sum(o.status is status for o in self.outcomes)

    @property
    def without_baseline(self) -> int:
        """Checks with a regression bound that had no baseline value to compare with."""
        return sum(o.no_baseline is not None for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """2 when any check errored (an input is invalid), else 1 when any failed, else 0."""
        if self.count(Status.error):
            return 2
        return 1 if self.count(Status.failed) else 0

    @property
    def all_passed(self) -> bool:
        return all(o.status is Status.passed for o in self.outcomes)


# -- the gate file ---------------------------------------------------------------------------------------

STATS_KEYS = ("compare_to", "confidence", "by", "by_class", "ci", "resamples", "seed")
COMMON_KEYS = ("name", "loss", "files", "reduction", "backend", "nan_policy", "strict", *BOUNDS, *STATS_KEYS)


def load_gates(path: str, storage_options: Mapping[str, Any] | None = None) -> list[Check]:
    """Parse and validate a gate file; raises :class:`GateError` naming the check and the key.
    ``storage_options``: fsspec options for a gate file at a URL."""
    try:
        text = read_text(_located(path, storage_options), "a TOML gate file")
    except LossCliError as exc:
        raise GateError(f"gate file ({path}): {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"gate file ({path}): expected TOML, but got a syntax error: {exc}") from None
    where = f"gate file ({path})"
    extra = sorted(set(document) - {"check"})
    if extra:
        raise GateError(f"{where}: unknown top-level key {extra[0]!r}: expected only [[check]] tables")
    tables = document.get("check")
    if isinstance(tables, dict):
        raise GateError(f"{where}: expected [[check]] (an array of tables), but got a single [check] table")
    if not isinstance(tables, list) or not tables:
        raise GateError(f"{where}: expected at least one [[check]] table, but got none")
    base = os.path.dirname(path)
    checks = [_check(where, index, table, base) for index, table in enumerate(tables, start=1)]
    seen: dict[str, int] = {}
    for check in checks:
        if check.name in seen:
            raise GateError(f"{where}: duplicate name {check.name!r}: check[{seen[check.name]}] and "
                            f"check[{check.index}] (names must be unique)")
        seen[check.name] = check.index
    return checks


def _check(where: str, index: int, table: Any, base: str) -> Check:
    at = f"{where}: check[{index}]"
    if not isinstance(table, dict):
        raise GateError(f"{at}: expected a table, but got {_kind(table)}")
    name = table.get("name")
    if name is None:
        raise GateError(f"{at}: missing key 'name'")
    if not isinstance(name, str) or not name.strip():
        raise GateError(f"{at}: name: expected a non-empty string, but got {_shown(name)}")
    at = f"{where}: check[{index}] {name!r}"
    loss = table.get("loss")
    if loss is None:
        raise GateError(f"{at}: missing key 'loss' (one of {', '.join(CATALOG)})")
    if not isinstance(loss, str) or loss not in CATALOG:
        close = difflib.get_close_matches(str(loss), CATALOG, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise GateError(f"{at}: loss: expected one of {', '.join(CATALOG)}, but got {_shown(loss)}{hint}")
    spec = CATALOG[loss]
    allowed, extras = _keys(spec)
    for key in table:
        if key not in allowed:
            raise GateError(f"{at}: unknown key {key!r}: {_unknown_hint(key, allowed, spec)}")
    options = {o.name: _option(at, o.name, o.type, table[o.name]) for o in spec.options if o.name in table}
    bounds = {b: _number(at, b, table[b]) for b in BOUNDS if b in table}
    if not bounds:
        raise GateError(f"{at}: no bound: expected at least one of {', '.join(BOUNDS)}")
    for b in REGRESSION:
        if bounds.get(b, 0) < 0:
            raise GateError(f"{at}: {b}: expected a number >= 0, but got {table[b]!r}")
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise GateError(f"{at}: min: expected a number <= max ({table['max']!r}), but got {table['min']!r}")
    reductions = [r.value for r in spec.reductions if r is not Reduction.none]
    return Check(
        index=index, name=name, loss=spec,
        files=_files(at, spec, table, base),
        extras=tuple(_file(at, role, table[role], base) for role in extras if role in table),
        reduction=Reduction(_choice(at, "reduction", table.get("reduction", "mean"), reductions,
                                    " (a gate needs one number, and none gives one per element)")),
        backend=Backend(_choice(at, "backend", table.get("backend", "numpy"), [b.value for b in Backend])),
        nan_policy=NanPolicy(_choice(at, "nan_policy", table.get("nan_policy", "propagate"),
                                     [p.value for p in NanPolicy])),
        strict=_option(at, "strict", bool, table.get("strict", False)),
        broadcast=_option(at, "broadcast", bool, table.get("broadcast", False)),
        options=options, bounds=bounds, stats=_stats(at, table, bounds, base),
    )


def _stats(at: str, table: dict[str, Any], bounds: dict[str, float], base: str) -> Stats:
    """The check's statistics keys, validated."""
    def level(key: str, default: float | None) -> float | None:
        value = table.get(key, default)
        if value is not None and not (_number(at, key, value) > 0 and value < 1):
            raise GateError(f"{at}: {key}: expected a level between 0 and 1 (such as 0.95), but got {_shown(value)}")
        return None if value is None else float(value)

    compare_to = _file(at, "compare_to", table["compare_to"], base) if "compare_to" in table else None
    if compare_to is not None and not any(b in bounds for b in REGRESSION):
        raise GateError(f"{at}: compare_to: expected max_increase or max_increase_pct to test against the "
                        "accepted model's predictions, but the check has neither")
    if "confidence" in table and compare_to is None:
        raise GateError(f"{at}: confidence: expected with compare_to (the paired test's confidence), but the "
                        "check has no compare_to")
    by = _file(at, "by", table["by"], base) if "by" in table else None
    by_class = _option(at, "by_class", bool, table.get("by_class", False))
    if by is not None and by_class:
        raise GateError(f"{at}: by: expected groups by a label file (by) or by class (by_class), not both")
    resamples, seed = (_option(at, key, int, table.get(key, default)) for key, default in (("resamples", 1000),
                                                                                          ("seed", 0)))
    if not 100 <= resamples <= 100_000:
        raise GateError(f"{at}: resamples: expected a number of resamples from 100 to 100000, but got {resamples}")
    if not 0 <= seed < 2**63:
        raise GateError(f"{at}: seed: expected a seed from 0 to 2**63 - 1, but got {seed}")
    return Stats(compare_to, level("confidence", 0.95), by, by_class, level("ci", None), resamples, seed)


def _keys(spec: LossSpec) -> tuple[list[str], list[str]]:
    """The keys a check of this loss takes, and of them the optional files (weight, mask, ...) in order."""
    extras = [f.name for f in spec.extras]
    keys = [*COMMON_KEYS, *(f.name for f in spec.files), *extras, *(o.name for o in spec.options)]
    if spec.family.broadcasts:
        keys.append("broadcast")
    return list(dict.fromkeys(keys)), extras


def _unknown_hint(key: str, allowed: list[str], spec: LossSpec) -> str:
    underscored = key.replace("-", "_")
    if underscored != key and underscored in allowed:
        return f"keys use underscores, as compute() and torch name them: {underscored}"
    if key in ("weight", "pos_weight", "broadcast"):
        return f"{spec.name} takes no {key}"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}{spec.name} checks take {', '.join(allowed)}"


def _files(at: str, spec: LossSpec, table: dict[str, Any], base: str) -> tuple[InputRef, ...]:
    names = [f.name for f in spec.files]
    named = [n for n in names if n in table]
    if "files" in table:
        if named:
            raise GateError(f"{at}: files: give the files either as files = [...] or by name "
                            f"({', '.join(names)}), not both (got files and {named[0]})")
        given = table["files"]
        if not isinstance(given, list) or len(given) != len(names):
            got = f"{len(given)} files" if isinstance(given, list) else _kind(given)
            raise GateError(f"{at}: files: expected a list of {len(names)} files in torch's order "
                            f"({', '.join(names)}), but got {got}")
        return tuple(_file(at, f.name, value, base, f.number_ok, key=f"files[{i}]")
                     for i, (f, value) in enumerate(zip(spec.files, given)))
    missing = [n for n in names if n not in table]
    if missing:
        raise GateError(f"{at}: missing key {missing[0]!r}: {spec.name} takes the files "
                        f"{', '.join(names)} (or files = [...] in that order)")
    return tuple(_file(at, f.name, table[f.name], base, f.number_ok) for f in spec.files)


def _file(at: str, role: str, value: Any, base: str, number_ok: bool = False, key: str | None = None) -> InputRef:
    key = key or role
    if number_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
        return InputRef(role, None, None, float(value))
    if not isinstance(value, str) or not value:
        expected = "a file (FILE[:selector]) or a number" if number_ok else "a file (FILE[:selector])"
        raise GateError(f"{at}: {key}: expected {expected}, but got {_shown(value)}")
    path, selector = parse_spec(value)
    if path == "-":
        raise GateError(f"{at}: {key}: expected a file, but got - (stdin cannot be read in a gate file)")
    resolved = _resolve(base, path)
    return InputRef(role, value, resolved if selector is None else f"{resolved}:{selector}")


def _resolve(base: str, path: str) -> str:
    """A file of a gate file, resolved against the gate file's folder ``base`` (a folder URL for a remote gate
    file); a URL or an absolute path stays as it is."""
    if is_url(path):
        return path
    path = os.path.expanduser(path)
    return join(base, path) if is_url(base) and not os.path.isabs(path) else os.path.join(base, path)


def _located(path: str, storage_options: Mapping[str, Any] | None) -> str:
    """``path``, read with ``storage_options`` when it is a URL."""
    return Store(check_options(storage_options)).url(path) if is_url(path) else path


def _option(at: str, key: str, kind: type, value: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(_choice(at, key, value, [m.value for m in kind]))
    if kind is bool:
        if not isinstance(value, bool):
            raise GateError(f"{at}: {key}: expected true or false, but got {_shown(value)}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise GateError(f"{at}: {key}: expected an integer, but got {_shown(value)}")
        return value
    return _number(at, key, value)


def _number(at: str, key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise GateError(f"{at}: {key}: expected a finite number, but got {_shown(value)}")
    return float(value)


def _choice(at: str, key: str, value: Any, choices: list[str], note: str = "") -> str:
    if not isinstance(value, str) or value not in choices:
        raise GateError(f"{at}: {key}: expected one of {', '.join(choices)}, but got {_shown(value)}"
                        f"{note if value == 'none' else ''}")
    return value


def _kind(value: Any) -> str:
    """A TOML value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    for kinds, words in ((str, "a string"), (int, "an integer"), (float, "a float"), (list, "an array"),
                         (dict, "a table")):
        if isinstance(value, kinds):
            return words
    return "a date/time"


def _shown(value: Any) -> str:
    """What arrived: a short value with its type."""
    if isinstance(value, (list, dict)):
        return _kind(value)
    text = json.dumps(value) if isinstance(value, (str, bool)) else str(value)
    return f"{_kind(value)} {text}"


# -- the baseline ----------------------------------------------------------------------------------------


def load_baseline(path: str, storage_options: Mapping[str, Any] | None = None) -> Baseline:
    """Read a report of an earlier run (``storage_options``: for one at a URL); raises :class:`GateError` when it
    is not one."""
    where = f"{{baseline}} ({path})"
    try:
        document = json.loads(read_text(_located(path, storage_options), "a losscli check report (JSON)"))
    except LossCliError as exc:
        raise GateError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise GateError(f"{where}: expected a losscli check report (JSON), but got invalid JSON: {exc.msg} "
                        f"at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise GateError(f"{where}: expected a losscli check report (an object with schema_version), but got "
                        f"{'an object without one' if isinstance(document, dict) else type(document).__name__}")
    version = document["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise GateError(f"{where}: expected schema_version {SCHEMA_VERSION}, but got {version!r}")
    checks = document.get("checks")
    if not isinstance(checks, list):
        raise GateError(f"{where}: checks: expected a list, but got {_kind(checks) if checks is not None else 'none'}")
    entries: dict[str, BaselineEntry] = {}
    for i, entry in enumerate(checks):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(
                entry.get("loss"), str):
            raise GateError(f"{where}: checks[{i}]: expected an object with a name and a loss")
        value = entry.get("value")
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            value = float(value.replace("Infinity", "inf"))
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise GateError(f"{where}: checks[{i}] {entry['name']!r}: value: expected a number or null, "
                            f"but got {value!r}")
        if entry["name"] in entries:
            raise GateError(f"{where}: checks[{i}]: duplicate name {entry['name']!r}")
        parameters = entry.get("parameters")
        entries[entry["name"]] = BaselineEntry(
            value=None if value is None else float(value), loss=entry["loss"], reduction=entry.get("reduction"),
            parameters=parameters if isinstance(parameters, dict) else None)
    created = document.get("created")
    return Baseline(path=path, created=created if isinstance(created, str) else None, checks=entries)


# -- running ---------------------------------------------------------------------------------------------


def select(checks: list[Check], only: list[str], skip: list[str]) -> dict[str, str]:
    """The checks that will not run, each with why; unknown names raise :class:`GateError`."""
    names = [c.name for c in checks]
    for argument, given in (("only", only), ("skip", skip)):
        for name in given:
            if name not in names:
                raise GateError(f"expected one of the gate file's checks ({', '.join(map(repr, names))}), but "
                                f"got {name!r}", argument=argument)
    left_out = {n: "not selected by --only" for n in names if only and n not in only}
    left_out.update((n, "skipped by --skip") for n in skip)
    return left_out


def run_checks(gate_file: str, checks: list[Check], *, baseline: Baseline | None = None,
               left_out: dict[str, str] | None = None, engine: Engine | str | Any = Engine.local,
               scheduler: str | None = None, storage_options: Mapping[str, Any] | None = None,
               hist_bins: int | None = None) -> Run:
    """Run every check (one failing or erroring does not stop the others); ``storage_options``: fsspec options
    for the files that are URLs. With the dask engine (:func:`losscli.compute_each`) the checks run as one
    graph, and each check's time is the graph's. ``hist_bins``: each outcome with a value also gets the
    histogram of its per-sample losses in at most that many bins (``Outcome.hist``)."""
    left_out = left_out or {}
    created = datetime.now(timezone.utc).replace(microsecond=0)
    start = time.perf_counter()
    loader, digests = Loader(storage_options=check_options(storage_options)), _Digests()
    outcomes = [Outcome(c, Status.skipped, reasons=[left_out[c.name]]) if c.name in left_out
                else Outcome(c, Status.passed) for c in checks]
    pending = [o for o in outcomes if o.status is Status.passed]
    jobs = [_job(o.check, loader, hist_bins) for o in pending]
    if isinstance(engine, str) and Engine(engine) is Engine.local:
        for outcome, job in zip(pending, jobs):
            began = time.perf_counter()
            _record(outcome, job, _computed([job], engine, scheduler)[0], digests, baseline)
            outcome.seconds = time.perf_counter() - began
    else:
        began = time.perf_counter()
        for outcome, job, results in zip(pending, jobs, _computed(jobs, engine, scheduler)):
            _record(outcome, job, results, digests, baseline)
            outcome.seconds = time.perf_counter() - began
    return Run(gate_file, created, outcomes, baseline, time.perf_counter() - start)


def check(gate_file: str, *, baseline: str | None = None, only: Sequence[str] = (), skip: Sequence[str] = (),
          checks: list[Check] | None = None, engine: Engine | str | Any = Engine.local,
          scheduler: str | None = None, storage_options: Mapping[str, Any] | None = None,
          hist_bins: int | None = None) -> Run:
    """Run the checks of a gate file (``losscli check``): load it and the baseline report, select, run.
    ``checks``: the gate file as :func:`load_gates` parsed it already (not read again); ``engine`` and
    ``scheduler`` as in :func:`losscli.compute`. ``storage_options``: fsspec options (``{"anon": True}``; the
    command line's ``--storage-option key=value``) for every URL of this run: the gate file, the baseline and
    the files the checks name. ``hist_bins``: each outcome also holds the histogram of its per-sample losses
    (``Outcome.hist``, in at most that many bins; what ``losscli check --plots`` draws).

    Raises :class:`GateError` when the gate file, the baseline or a name in ``only``/``skip`` is invalid; an
    invalid input of one check makes that check's status ``error`` and the others still run."""
    options = check_options(storage_options)
    checks = load_gates(gate_file, options) if checks is None else checks
    left_out = select(checks, list(only), list(skip))
    return run_checks(gate_file, checks, baseline=load_baseline(baseline, options) if baseline else None,
                      left_out=left_out, engine=engine, scheduler=scheduler, storage_options=options,
                      hist_bins=hist_bins)


class _Job(NamedTuple):
    """A check's compute() calls: its own, after the accepted model's with compare_to; with compare_to the
    bootstraps of the paired test (one each, fed by those calls); and the histogram its own call feeds, when
    check() was asked for one (hist_bins)."""

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]]
    boots: list[Any]
    hist: Any = None


def _job(check: Check, loader: Loader, hist_bins: int | None = None) -> _Job | LossCliError:
    """The check as compute()'s calls, its files loaded; or why they cannot be."""
    stats = check.stats
    try:
        arrays = [ref.number if ref.resolved is None else loader.load(ref.resolved, role=ref.role)
                  for ref in check.files]
        extras = {ref.role: loader.load(ref.resolved, role=ref.role) for ref in check.extras}
        by = None if stats.by is None else loader.labels(stats.by.resolved, role="by")
        accepted = None if stats.compare_to is None else loader.load(stats.compare_to.resolved,
                                                                      role=check.files[0].role)
    except LossCliError as exc:
        return exc
    common = dict(**extras, reduction=check.reduction, backend=check.backend, nan_policy=check.nan_policy,
                  strict=check.strict, broadcast=check.broadcast, **check.options)
    own = dict(common, by=by, outputs=Outputs(ci=stats.ci, resamples=stats.resamples, seed=stats.seed,
                                              by_class=stats.by_class))
    views: list[Any] = []
    if hist_bins is not None:
        from .engine.accumulators import Histogram

        views.append(Histogram(check.reduction, hist_bins))
    hist = views[0] if views else None
    if accepted is None:
        return _Job([((check.loss, *arrays), dict(own, streaming=Streaming(accumulators=views)))], [], hist)
    from .engine.bootstrap import Bootstrap  # loaded only for a paired test

    boots = [Bootstrap(check.reduction, stats.confidence, stats.resamples, stats.seed) for _ in range(2)]
    return _Job([((check.loss, accepted, *arrays[1:]), dict(common, streaming=Streaming(accumulators=[boots[0]]))),
                 ((check.loss, *arrays), dict(own, streaming=Streaming(accumulators=[boots[1], *views])))], boots,
                hist)


def _computed(jobs: list[Any], engine: Engine | str | Any = Engine.local, scheduler: str | None = None) -> list[Any]:
    """:func:`losscli.compute_each` of the calls of every job whose files loaded: each job's results (a job
    that did not load is its error)."""
    found = iter(compute_each([c for job in jobs if isinstance(job, _Job) for c in job.calls], engine=engine,
                              scheduler=scheduler))
    return [[next(found) for _ in job.calls] if isinstance(job, _Job) else job for job in jobs]


def _record(outcome: Outcome, job: Any, results: Any, digests: _Digests, baseline: Baseline | None) -> None:
    """A check's results (LossResults, or the error it stopped at) into its outcome."""
    refs = outcome.check.refs
    error = results if isinstance(results, LossCliError) else next(
        (r for r in results if isinstance(r, LossCliError)), None)
    if error is not None:
        outcome.status, outcome.reasons, outcome.error_type = Status.error, [str(error)], type(error).__name__
        outcome.inputs = [_input(ref, digests, None) for ref in refs]
        return
    result = results[-1]
    shapes = {info.role: info for info in result.inputs}
    outcome.inputs = [_input(ref, digests, shapes.get(ref.role)) for ref in refs]
    outcome.printed = str(result.value[()])  # exactly what `losscli LOSS ... -f plain` prints
    outcome.value, outcome.dtype, outcome.warnings = float(outcome.printed), str(result.value.dtype), result.warnings
    outcome.ci = result.ci
    if job.hist is not None:
        outcome.hist = job.hist.finish()
    if job.boots:
        _paired(outcome, results[0], result, job.boots)
    else:
        _judge(outcome, baseline)
    _judge_groups(outcome, result)


def _paired(outcome: Outcome, accepted: Any, result: Any, boots: list[Any]) -> None:
    """The regression bounds as a paired test against the accepted model (compare_to): a bound fails only when
    the whole interval of the increase lies above what it allows (max_increase, or max_increase_pct of the
    accepted model's value); max and min as always."""
    from .compare import paired

    check, printed = outcome.check, outcome.printed
    found = outcome.comparison = paired(accepted, boots[0], result, boots[1], alpha=1 - check.stats.confidence)
    base = str(accepted.value[()])
    outcome.baseline, outcome.delta = float(base), found.difference
    outcome.delta_pct = None if not math.isfinite(found.relative) else 100 * found.relative
    verdict = judge(printed, {b: v for b, v in check.bounds.items() if b not in REGRESSION})
    test = (f"{check.stats.confidence * 100:g}% CI of the increase [{found.low:.4g}, {found.high:.4g}], "
            f"p = {found.p_value:.3g}")
    for bound in (b for b in REGRESSION if b in check.bounds):
        given = check.bounds[bound]
        allowed = given if bound == "max_increase" else given / 100 * abs(float(base))
        if found.low > allowed:
            verdict.fail(bound, f"{printed} is {found.difference:+.4g} from the accepted model's {base} ({test}): "
                                f"significantly more than {bound} {number_text(given)}"
                                f"{'%' if bound == 'max_increase_pct' else ''}")
        elif math.isnan(found.low):
            outcome.notes.append(f"{bound} not tested: the paired interval has no value ({test})")
    outcome.failed, outcome.reasons = verdict.failed, verdict.reasons
    outcome.status = Status.passed if verdict.passed else Status.failed


def _judge_groups(outcome: Outcome, result: Any) -> None:
    """max and min applied to every group (by, by_class): a group that fails fails the check."""
    bounds = {b: v for b, v in outcome.check.bounds.items() if b in ("max", "min")}
    for group in result.groups or []:
        printed = str(result.value.dtype.type(group.value))
        verdict = judge(printed, bounds)
        outcome.groups.append(GroupOutcome(group.name, group.count, printed, verdict.failed, verdict.reasons,
                                           group.ci))
        if not verdict.passed:
            outcome.status = Status.failed
            outcome.failed += [kind for kind in verdict.failed if kind not in outcome.failed]
            outcome.reasons += [f"group {group.name!r}: {reason}" for reason in verdict.reasons]


def _judge(outcome: Outcome, baseline: Baseline | None) -> None:
    """Set the status from the bounds, the baseline and NaN."""
    bounds, printed = outcome.check.bounds, outcome.printed
    assert printed is not None
    base = None
    regression = [b for b in REGRESSION if b in bounds]
    if regression:
        base, why = baseline.value_for(outcome.check) if baseline else (None, "no baseline given")
        if base is None:
            outcome.no_baseline = why
            outcome.notes.append(f"no baseline ({why}): {' and '.join(regression)} not checked")
        outcome.baseline = base
    verdict = judge(printed, bounds, base)
    outcome.delta, outcome.delta_pct = verdict.delta, verdict.delta_pct
    outcome.failed, outcome.reasons = verdict.failed, verdict.reasons
    outcome.status = Status.passed if verdict.passed else Status.failed


class _Digests(dict):
    """sha256 of each file's bytes, computed once a run."""

    def of(self, path: str) -> str | None:
        if path not in self:
            self[path] = _sha256(path)
        return self[path]


def _sha256(path: str) -> str | None:
    if is_url(path):  # not downloaded whole for a digest: the report's sha256 is null
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:  # the check's own error already says why the file cannot be read
        return None
    return digest.hexdigest()


def _input(ref: InputRef, digests: _Digests, info: Any) -> dict[str, Any]:
    """An input as the report records it."""
    if ref.resolved is None:
        return {"role": ref.role, "value": ref.number}
    path, selector = parse_spec(ref.resolved)
    found: dict[str, Any] = {"role": ref.role, "file": ref.spec, "path": path, "selector": selector,
                             "sha256": digests.of(path)}
    if info is not None:
        found.update(shape=list(info.shape), dtype=info.dtype)
    return found
