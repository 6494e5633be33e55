"""The JSON document of a ``none`` loss without holding it as text: :func:`json_pieces` prints what
``json.dumps(to_json(result), indent=2)`` prints, with the per-element ``value`` rendered a slice at a time;
with ``--output`` (:func:`written_json`), the document carries the summary and the file instead of the values.

These take the document as :func:`~losscli.edge.render.to_json` builds it (of a result whose value is an empty
slice, so that no large list is ever built) and only replace its ``value`` (and ``shape``): whatever
vocabulary ``to_json`` speaks, they follow it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..result import LossResult
from .summary import PIECE, Written

MARK = "\x00losscli-value\x00"  # stands for the value in the document, to be cut out and streamed
NON_FINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def _light(result: LossResult, to_json: Callable[[LossResult], dict[str, Any]]) -> dict[str, Any]:
    """``to_json`` of the result with an empty slice of its value; the real shape put back."""
    document = to_json(dataclasses.replace(result, value=result.value[:0]))
    document["shape"] = list(result.value.shape)
    return document


def written_json(result: LossResult, written: Written, to_json: Callable[[LossResult], dict[str, Any]]) -> str:
    """With ``--output``: ``value`` is null, ``output`` the file, ``summary`` its count, mean, min, max, nan."""
    document = _light(result, to_json)
    document["value"] = None
    document["output"] = written.path
    document["summary"] = written.summary.fields()
    return json.dumps(document, indent=2, allow_nan=False)


def json_pieces(result: LossResult, to_json: Callable[[LossResult], dict[str, Any]]) -> Iterator[str]:
    """The document in pieces (joined: ``json.dumps(to_json(result), indent=2)``, byte for byte)."""
    document = _light(result, to_json)
    document["value"] = MARK
    text = json.dumps(document, indent=2, allow_nan=False)
    mark = json.dumps(MARK)
    cut = text.index(mark)
    line = text.rfind("\n", 0, cut) + 1
    indent = len(text[line:cut]) - len(text[line:cut].lstrip(" "))
    yield text[:cut]
    yield from _list(result.value, indent)
    yield text[cut + len(mark):]


def numbers(flat: np.ndarray) -> list[str]:
    """Each value as :func:`~losscli.edge.cells.json_number` and ``json.dumps`` write it."""
    return [NON_FINITE.get(s) or repr(float(s)) for s in map(str, flat)]


def _nested(texts: np.ndarray | str, indent: int) -> str:
    """A nested list of number texts as ``json.dumps(..., indent=2)`` lays it out, its ``[`` at ``indent``."""
    if isinstance(texts, str):
        return texts
    if texts.shape[0] == 0:
        return "[]"
    inner = " " * (indent + 2)
    return "[\n" + ",\n".join(inner + _nested(t, indent + 2) for t in texts) + "\n" + " " * indent + "]"


def _list(value: np.ndarray, indent: int) -> Iterator[str]:
    """``value`` (at least 1-d) as a JSON list at ``indent``, a slice of rows at a time."""
    if value.ndim == 0:
        yield numbers(value.reshape(1))[0]
        return
    if value.shape[0] == 0:
        yield "[]"
        return
    per_row = max(1, int(np.prod(value.shape[1:])))
    rows = max(1, PIECE // per_row)
    inner = " " * (indent + 2)
    yield "["
    for begin in range(0, value.shape[0], rows):
        block = value[begin:begin + rows]
        texts = np.array(numbers(block.reshape(-1)), dtype=object).reshape(block.shape)
        yield ("," if begin else "") + ",".join("\n" + inner + _nested(t, indent + 2) for t in texts)
    yield "\n" + " " * indent + "]"
