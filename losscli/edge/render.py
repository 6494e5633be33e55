"""LossResult -> what a script reads: ``--format json``, ``plain``, ``csv`` and ``metrics``. Renderers return a
dict or text and print nothing; the command prints once. No rich here: the table format, for people, is
:mod:`losscli.edge.render_table`'s. json and :mod:`~losscli.edge.render_json` load only for JSON (a plain run's
start pays for neither)."""

from __future__ import annotations

import enum
import math
from typing import Any, Iterator

import numpy as np

from .. import __version__
from ..errors import OptionError
from ..reduction import Reduction
from ..result import LossResult
from .cells import array_csv, csv_header, csv_rows, json_value
from .render_views import in_dtype, interval_json, view_csv, view_json, view_plain
from .summary import PIECE, Written

class Format(str, enum.Enum):
    table = "table"
    json = "json"
    plain = "plain"
    csv = "csv"
    metrics = "metrics"


SCHEMA_VERSION = 1  # of the loss commands' JSON (losscli/result.schema.json); bump on an incompatible change


def check_format(fmt: Format, top: int | None, hist: bool, reduction: Reduction | None = None) -> None:
    """plain and csv print one view, metrics one number: refuse what they cannot show before any work."""
    if fmt in (Format.plain, Format.csv) and top is not None and hist:
        raise OptionError(f"--format {fmt.value}: expected one of --top and --hist (it prints one table of "
                          "numbers), but got both; use --format table or json to see both")
    if fmt is Format.metrics and (reduction is Reduction.none or top is not None or hist):
        got = "--reduction none" if reduction is Reduction.none else ("--top" if top is not None else "--hist")
        raise OptionError(f"--format metrics: expected one reduced value (it prints {{\"LOSS\": value}}), but "
                          f"got {got}; use --format json for per-element values and views")


def inputs_json(result: LossResult) -> list[dict[str, Any]]:
    """Each input as the JSON vocabulary records it: a file with its shape and dtype, or a number."""
    return [{"role": i.role, "value": i.number} if i.number is not None else
            {"role": i.role, "file": i.source, "shape": list(i.shape), "dtype": i.dtype} for i in result.inputs]


def to_json(result: LossResult) -> dict[str, Any]:
    """Everything needed to read and reproduce the number: schema ``losscli/result.schema.json``, in the
    vocabulary of the check report (``parameters``, ``inputs`` as a list, ``schema_version``, ``tool``)."""
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "losscli", "version": __version__},
        "loss": result.loss,
        "torch": f"torch.nn.functional.{result.torch_name}",
        "reduction": result.reduction.value,
        "backend": result.backend.value,
        "shape": list(result.value.shape),
        "dtype": str(result.value.dtype),
        "value": json_value(result.value),
        "count": result.count,
        "selected": result.selected,
        "parameters": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in result.params.items()},
        "inputs": inputs_json(result),
        "warnings": result.warnings,
        "versions": result.versions,
    }
    if result.grad is not None:
        out["grad"] = json_value(result.grad)
    if result.ci is not None:
        ci = result.ci
        out["ci"] = interval_json(ci, result)
    out.update(view_json(result))
    check = result.cross_check
    if check is not None:
        out["cross_check"] = {
            "backend": check.backend.value,
            "value": json_value(check.value),
            "max_abs_diff": check.max_abs_diff,
            "max_rel_diff": check.max_rel_diff,
            "tolerance": check.tolerance,
            "ok": check.ok,
        }
    return out


def ci_text(result: LossResult) -> str:
    """`` [low, high] 95% CI`` after the value, in the loss's dtype; empty without an interval."""
    ci = result.ci
    if ci is None:
        return ""
    return f" [{in_dtype(ci.low, result)}, {in_dtype(ci.high, result)}] {ci.level * 100:g}% CI"


def to_metrics(result: LossResult) -> dict[str, float]:
    """``{"LOSS": value}``: the flat form ``dvc metrics`` and ``mlflow.log_metrics`` read, the value as printed
    (a reduced loss; :func:`check_format` refuses ``none``)."""
    return {result.loss: float(str(result.value[()]))}


def metrics_text(metrics: dict[str, float]) -> str:
    """Flat JSON; a non-finite value is written as ``NaN``/``Infinity``, which Python's json (dvc, mlflow) reads."""
    import json

    return json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=True)


def to_plain(result: LossResult) -> str:
    """The number alone (one value a line for ``none``), for ``$(losscli ...)``; or the view asked for."""
    return "".join(plain_pieces(result))


def plain_pieces(result: LossResult) -> Iterator[str]:
    """:func:`to_plain`'s text in pieces of at most :data:`PIECE` values, to print a large ``none`` as it is
    rendered (joined, the pieces are the text; no newline at the end)."""
    view = view_plain(result)
    if view is not None:
        yield view
        return
    flat = result.value.reshape(-1)
    for begin in range(0, flat.size, PIECE):
        yield ("\n" if begin else "") + "\n".join(map(str, flat[begin:begin + PIECE]))


def to_csv(result: LossResult) -> str:
    """Index columns ``i0, i1, ...`` and ``value``; a scalar is a single ``value`` column; or the view asked
    for."""
    return "".join(csv_pieces(result))


def csv_pieces(result: LossResult) -> Iterator[str]:
    """:func:`to_csv`'s text in pieces of about :data:`PIECE` values (as :func:`plain_pieces`)."""
    view = view_csv(result)
    value = result.value
    if view is not None or value.ndim == 0:
        yield view if view is not None else array_csv(value)
        return
    yield csv_header(value.ndim)
    rows = max(1, PIECE // max(1, math.prod(value.shape[1:])))
    for begin in range(0, value.shape[0], rows):
        yield "".join("\n" + line for line in csv_rows(value[begin:begin + rows], begin))


def written_fields(result: LossResult, written: Written) -> dict[str, str]:
    """With ``--output``, what ``plain`` and ``csv`` print instead of the values: the summary and the file."""
    exact = result.value.dtype.type
    summary = written.summary
    return {"count": str(summary.count), "mean": str(np.float64(summary.mean)), "min": str(exact(summary.min)),
            "max": str(exact(summary.max)), "nan": str(summary.nan), "output": written.path}


def written_plain(result: LossResult, written: Written) -> str:
    """One ``name value`` line each: count, mean, min, max, nan, output (the path is the rest of its line)."""
    return "\n".join(f"{name} {value}" for name, value in written_fields(result, written).items())


def written_csv(result: LossResult, written: Written) -> str:
    """A header ``count,mean,min,max,nan,output`` and one row (the path quoted when CSV needs it)."""
    import csv
    import io

    text = io.StringIO()
    fields = written_fields(result, written)
    csv.writer(text, lineterminator="\n").writerows([list(fields), list(fields.values())])
    return text.getvalue()[:-1]


def pieces(result: LossResult, fmt: Format, written: Written | None = None) -> Iterator[str]:
    """What a loss command prints for ``--format`` other than table, as text pieces to write in order. A
    ``none`` loss's values are never one text: with ``--output`` (``written``) its summary and the file
    stand for them, else they come a slice at a time; plain and csv print a view (top, hist) instead."""
    view = result.top is not None or result.hist is not None
    if result.is_scalar or fmt not in (Format.json, Format.plain, Format.csv):
        yield render(result, fmt)
    elif written is not None and (fmt is Format.json or not view):
        from .render_json import written_json

        written_text = {Format.json: lambda: written_json(result, written, to_json),
                        Format.plain: lambda: written_plain(result, written),
                        Format.csv: lambda: written_csv(result, written)}
        yield written_text[fmt]()
    elif fmt is Format.json:
        from .render_json import json_pieces

        yield from json_pieces(result, to_json)
    else:
        yield from (plain_pieces if fmt is Format.plain else csv_pieces)(result)
    yield "\n"


def render(result: LossResult, fmt: Format) -> str:
    """The text the command prints for ``--format`` (any but table: its renderable is
    :func:`~losscli.edge.render_table.to_table`'s)."""
    texts = {Format.json: lambda: json_text(to_json(result)),
             Format.csv: lambda: to_csv(result), Format.metrics: lambda: metrics_text(to_metrics(result)),
             Format.plain: lambda: to_plain(result)}
    return texts[fmt]()


def json_text(document: dict[str, Any]) -> str:
    """``--format json``'s text of a result printed as one text (the others come in pieces:
    :func:`~losscli.edge.render_json.json_pieces`)."""
    import json

    return json.dumps(document, indent=2, allow_nan=False)
