"""LossResult -> what a person or a script reads. Renderers return objects (a rich renderable, a dict,
a string) and print nothing; the command prints once."""

from __future__ import annotations

import enum
import itertools
import json
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..api import LossResult
from ..errors import InputError


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    plain = "plain"
    csv = "csv"


def json_number(value: np.floating) -> float | str:
    """A JSON number, or "NaN" / "Infinity" / "-Infinity" (JSON has no non-finite numbers)."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(str(value))  # float32 0.6666667 stays 0.6666667, not 0.6666666865348816


def json_value(value: np.ndarray) -> Any:
    if value.ndim == 0:
        return json_number(value[()])
    return [json_value(v) for v in value]


def to_json(result: LossResult) -> dict[str, Any]:
    """Everything needed to read and reproduce the number."""
    out: dict[str, Any] = {
        "loss": result.loss,
        "torch": f"torch.nn.functional.{result.torch_name}",
        "reduction": result.reduction.value,
        "backend": result.backend.value,
        "shape": list(result.value.shape),
        "dtype": str(result.value.dtype),
        "value": json_value(result.value),
        "count": result.count,
        "selected": result.selected,
        "params": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in result.params.items()},
        "inputs": {
            i.role: {"file": i.source, "shape": list(i.shape), "dtype": i.dtype} for i in result.inputs
        },
        "warnings": result.warnings,
        "versions": result.versions,
    }
    if result.grad is not None:
        out["grad"] = json_value(result.grad)
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


def to_plain(result: LossResult) -> str:
    """The number alone (one value a line for ``none``), for ``$(losscli ...)``; or the view asked for."""
    view = view_plain(result)
    return view if view is not None else "\n".join(str(v) for v in result.value.reshape(-1))


def to_csv(result: LossResult) -> str:
    """Index columns ``i0, i1, ...`` and ``value``; a scalar is a single ``value`` column; or the view asked
    for."""
    view = view_csv(result)
    return view if view is not None else array_csv(result.value)


def array_csv(value: np.ndarray) -> str:
    return "\n".join([csv_header(value.ndim), *csv_rows(value)])


def csv_header(ndim: int) -> str:
    return ",".join([f"i{d}" for d in range(ndim)] + ["value"])


def csv_rows(value: np.ndarray, start: int = 0):
    """One CSV line per element; ``start``: the first index along axis 0 (``value`` is rows of a larger array)."""
    for index in itertools.product(*(range(n) for n in value.shape)):
        yield ",".join([str(index[0] + start), *map(str, index[1:]), str(value[index])] if index else
                       [str(value[index])])


def save(array: np.ndarray, path: str, option: str) -> None:
    """Write an array (a value, a per-element loss, a gradient) to ``.npy`` or ``.csv``."""
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            np.save(path, array)
        elif lower.endswith(".csv"):
            with open(path, "w", encoding="utf-8") as f:
                f.write(array_csv(array) + "\n")
        else:
            raise InputError(f"{option} ({path}): expected a .npy or .csv file name, but got another extension")
    except OSError as exc:
        raise InputError(f"{option} ({path}): expected a writable path, but got '{exc.strerror}'") from None


# -- table ---------------------------------------------------------------------------------------------

HEAD = 6  # rows (and columns) shown at each end of a large per-element output


def _cell(value: np.floating) -> str:
    return f"{float(value):.6g}"


def _cut(n: int, keep: int = HEAD) -> list[int | None]:
    """Indices to show along an axis of length n: all, or head, a gap (None), tail."""
    if n <= 2 * keep + 1:
        return list(range(n))
    return [*range(keep), None, *range(n - keep, n)]


def _grid(value: np.ndarray, label: str = "loss") -> Table:
    grid = Table(box=None, pad_edge=False, header_style="bold dim")
    if value.ndim == 1:
        grid.add_column("index", justify="right", style="dim")
        grid.add_column(label, justify="right")
        for i in _cut(len(value)):
            grid.add_row(*(("…", "…") if i is None else (str(i), _cell(value[i]))))
    elif value.ndim == 2:
        cols = _cut(value.shape[1])
        grid.add_column("", justify="right", style="dim")
        for j in cols:
            grid.add_column("…" if j is None else str(j), justify="right")
        for i in _cut(value.shape[0]):
            if i is None:
                grid.add_row("…", *("…" for _ in cols))
            else:
                grid.add_row(str(i), *("…" if j is None else _cell(value[i, j]) for j in cols))
    else:
        grid.add_column("index", justify="right", style="dim")
        grid.add_column(label, justify="right")
        flat = value.reshape(-1)
        for k in _cut(flat.size):
            if k is None:
                grid.add_row("…", "…")
            else:
                grid.add_row(str(tuple(int(i) for i in np.unravel_index(k, value.shape))), _cell(flat[k]))
    return grid


def _summary(array: np.ndarray, note: str = "") -> Text:
    v = array.astype(np.float64)
    parts = [f"{v.size} values"]
    if v.size:
        with np.errstate(all="ignore"):
            parts += [f"mean {np.mean(v):.6g}", f"min {np.min(v):.6g}", f"max {np.max(v):.6g}"]
    return Text(" · ".join(parts + ([note] if note else [])), style="dim")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def to_table(result: LossResult) -> Group:
    """A summary table (loss, reduction, backend, inputs, counts, value); for ``none`` also the values."""
    table = Table(show_header=False, title=f"{result.loss}", title_style="bold", box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("loss", f"{result.loss}  [dim](torch.nn.functional.{result.torch_name})[/dim]")
    table.add_row("reduction", result.reduction.value)
    table.add_row("backend", result.backend.value)
    for info in result.inputs:
        source = f"{info.source}  " if info.source else ""
        table.add_row(info.role, Text(f"{source}{_shape(info.shape)} {info.dtype}"))
    shown = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in result.params.items()}
    if shown:
        table.add_row("options", Text(", ".join(f"{k}={v}" for k, v in shown.items())))
    selected = "" if result.selected == result.count else f" ({result.selected} selected)"
    table.add_row("elements", f"{result.count}{selected}")
    if result.is_scalar:
        table.add_row("value", Text(str(result.value[()]), style="bold cyan"))
    else:
        table.add_row("value", f"{_shape(result.value.shape)} {result.value.dtype}, below")
    check = result.cross_check
    if check is not None:
        verdict = "[green]ok[/green]" if check.ok else "[red]FAILED[/red]"
        other = str(check.value[()]) if check.value.ndim == 0 else "per element"
        table.add_row("cross-check", f"{check.backend.value}: {other} · max |Δ| {check.max_abs_diff:.3g} · "
                                     f"{verdict} (tolerance {check.tolerance:g})")
    parts: list[Any] = [table]
    if not result.is_scalar:
        masked = result.count - result.selected
        note = f"{masked} masked out or ignored (shown as 0)" if masked else ""
        parts += [Text(), _grid(result.value), _summary(result.value, note)]
    if result.grad is not None:
        title = f"d(loss)/d({result.inputs[0].role}), {_shape(result.grad.shape)} {result.grad.dtype}"
        parts += [Text(), Text(title, style="bold")]
        parts += [Text(str(result.grad[()]))] if result.grad.ndim == 0 else [_grid(result.grad, "grad"), _summary(result.grad)]
    return Group(*parts, *view_parts(result))


def render(result: LossResult, fmt: Format) -> Any:
    """The object the command prints for ``--format``."""
    if fmt is Format.table:
        return to_table(result)
    if fmt is Format.json:
        return json.dumps(to_json(result), indent=2, allow_nan=False)
    if fmt is Format.csv:
        return to_csv(result)
    return to_plain(result)


# below the helpers above, which the views' renderers use
from .views import check_format, view_csv, view_json, view_parts, view_plain

__all__ = ["Format", "check_format", "render", "save", "to_csv", "to_json", "to_plain", "to_table"]
