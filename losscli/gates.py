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
from typing import TYPE_CHECKING, Any

from .api import Engine, NanPolicy, Streaming, compute_each
from .backends import Backend
from .errors import LossCliError
from .io import Loader, parse_spec
from .io.files import read_text
from .io.remote import Store, check_options, is_url, join
from .judge import BOUNDS, REGRESSION, judge
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

COMMON_KEYS = ("name", "loss", "files", "reduction", "backend", "nan_policy", "strict", *BOUNDS)


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
        options=options, bounds=bounds,
    )


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
    calls = [_call(o.check, loader, hist_bins) for o in pending]
    if isinstance(engine, str) and Engine(engine) is Engine.local:
        for outcome, call in zip(pending, calls):
            began = time.perf_counter()
            _record(outcome, _computed([call], engine, scheduler)[0], digests, baseline, call)
            outcome.seconds = time.perf_counter() - began
    else:
        began = time.perf_counter()
        for outcome, call, result in zip(pending, calls, _computed(calls, engine, scheduler)):
            _record(outcome, result, digests, baseline, call)
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


def _call(check: Check, loader: Loader,
          hist_bins: int | None = None) -> tuple[tuple[Any, ...], dict[str, Any]] | LossCliError:
    """The check as compute()'s arguments, its files loaded (with ``hist_bins``, a histogram of its per-sample
    losses fed as it runs); or why they cannot be."""
    try:
        arrays = [ref.number if ref.resolved is None else loader.load(ref.resolved, role=ref.role)
                  for ref in check.files]
        extras = {ref.role: loader.load(ref.resolved, role=ref.role) for ref in check.extras}
    except LossCliError as exc:
        return exc
    views = {}
    if hist_bins is not None:
        from .engine.accumulators import Histogram

        views["streaming"] = Streaming(accumulators=[Histogram(check.reduction, hist_bins)])
    return (check.loss, *arrays), dict(**extras, reduction=check.reduction, backend=check.backend,
                                       nan_policy=check.nan_policy, strict=check.strict, broadcast=check.broadcast,
                                       **check.options, **views)


def _computed(calls: list[Any], engine: Engine | str | Any = Engine.local, scheduler: str | None = None) -> list[Any]:
    """:func:`losscli.compute_each` of the calls whose files loaded; a call that did not load is its error."""
    found = iter(compute_each([c for c in calls if isinstance(c, tuple)], engine=engine, scheduler=scheduler))
    return [next(found) if isinstance(c, tuple) else c for c in calls]


def _record(outcome: Outcome, result: Any, digests: _Digests, baseline: Baseline | None, call: Any = None) -> None:
    """A check's result (a LossResult, or the error it stopped at) into its outcome (and the histogram that
    ``call``, compute()'s arguments, fed)."""
    refs = outcome.check.files + outcome.check.extras
    if isinstance(result, LossCliError):
        outcome.status, outcome.reasons, outcome.error_type = Status.error, [str(result)], type(result).__name__
        outcome.inputs = [_input(ref, digests, None) for ref in refs]
        return
    shapes = {info.role: info for info in result.inputs}
    outcome.inputs = [_input(ref, digests, shapes.get(ref.role)) for ref in refs]
    outcome.printed = str(result.value[()])  # exactly what `losscli LOSS ... -f plain` prints
    outcome.value, outcome.dtype, outcome.warnings = float(outcome.printed), str(result.value.dtype), result.warnings
    if isinstance(call, tuple) and "streaming" in call[1]:
        outcome.hist = call[1]["streaming"].accumulators[0].finish()
    _judge(outcome, baseline)


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
