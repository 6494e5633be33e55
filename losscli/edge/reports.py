"""A gate run (:class:`losscli.gates.Run`) -> what people and CI systems read: a rich table (rich is imported
only to draw it) with a verdict line, the JSON report (``losscli/report.schema.json``), JUnit XML, a Markdown
summary and flat metrics. Each returns an object or a string and prints nothing. A run that stopped before any
check (:class:`Stopped`: the gate file or the baseline is invalid) has the same reports, stating the error, as
pytest's collection error."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import __version__
from ..gates import SCHEMA_VERSION, Outcome, Run, Status
from ..judge import REGRESSION, number_text
from .cells import json_number

if TYPE_CHECKING:
    from rich.table import Table

STATUS_WORD = {Status.passed: "pass", Status.failed: "FAIL", Status.error: "error", Status.skipped: "skipped"}
STATUS_STYLE = {Status.passed: "green", Status.failed: "bold red", Status.error: "yellow", Status.skipped: "dim"}
STATUS_MARK = {Status.passed: "✅", Status.failed: "❌", Status.error: "⚠️", Status.skipped: "⏭️"}
LEVEL_STYLE = {"FAIL": "red", "error": "red", "warning": "yellow", "note": "yellow", "baseline": "cyan"}
COLUMNS = ("check", "loss", "value", "bound", "baseline", "delta", "status")
BOUND_SHOWN = {"max": "≤ {}", "min": "≥ {}", "max_increase": "Δ ≤ +{}", "max_increase_pct": "Δ ≤ +{}%"}


class Stopped(NamedTuple):
    """A ``losscli check`` that stopped before any check ran: what its reports say instead of the checks."""

    gate_file: str
    baseline: str | None  # the --baseline given, if any
    message: str  # the one line stderr shows (arguments as flags)
    error_type: str  # the error's class name ("GateError")
    created: datetime

    @property
    def verdict(self) -> str:
        return "ERROR: no check ran"


def verdict_word(run: Run) -> str:
    """pass, fail or error: what the exit status says (0, 1, 2)."""
    return ("pass", "fail", "error")[run.exit_code]


def verdict(run: Run) -> str:
    """One line: ``PASS: 3 passed, 0 failed, 0 errors`` (skipped and baseline counts when there are any)."""
    errors = run.count(Status.error)
    line = (f"{verdict_word(run).upper()}: {run.count(Status.passed)} passed, {run.count(Status.failed)} failed, "
            f"{errors} error{'' if errors == 1 else 's'}")
    if run.count(Status.skipped):
        line += f", {run.count(Status.skipped)} skipped"
    if run.without_baseline:
        line += f"; {run.without_baseline} not compared (no baseline)"
    return line


def cells(outcome: Outcome, stacked: bool = False) -> dict[str, str]:
    """The row of one check, as text: the table and the Markdown summary show the same. ``stacked``: a
    check's bounds, and a delta's percentage, on lines of their own (for a narrow terminal)."""
    bounds = outcome.check.bounds
    regression = any(b in bounds for b in REGRESSION)
    delta = "—"
    if outcome.delta is not None:
        delta = f"{outcome.delta:+.3g}"
        if outcome.delta_pct is not None:
            pct = f"{outcome.delta_pct:+.1f}%"
            delta += f"\n{pct}" if stacked else f" ({pct})"
    return {
        "check": outcome.check.name,
        "loss": outcome.check.loss.name,
        "value": outcome.printed if outcome.printed is not None else "—",
        "bound": ("\n" if stacked else ", ").join(BOUND_SHOWN[b].format(number_text(v)) for b, v in bounds.items()),
        "baseline": number_text(outcome.baseline) if outcome.baseline is not None else ("none" if regression else "—"),
        "delta": delta,
        "status": STATUS_WORD[outcome.status],
    }


def to_check_table(run: Run) -> Table:
    """A row per check; at 80 columns only the check's name wraps; bounds and deltas stack."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"losscli check {run.gate_file}"), title_style="bold", header_style="bold",
                  box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("value", "baseline", "delta") else "left",
                         no_wrap=column != "check", min_width=11 if column == "check" else None)
    for outcome in run.outcomes:
        rows = [(cells(outcome, stacked=True), outcome.status)]
        rows += [(group_cells(outcome, g, stacked=True), g.status) for g in outcome.groups]
        for row, status in rows:
            style = STATUS_STYLE[status]
            table.add_row(*(Text(row[c], style=style if c == "status" else "") for c in COLUMNS),
                          style="dim" if status is Status.skipped else None)
    return table


def group_cells(outcome: Outcome, group: Any, stacked: bool = False) -> dict[str, str]:
    """The row of one group of a check (by, by_class): its value against the check's max and min."""
    bounds = {b: v for b, v in outcome.check.bounds.items() if b in ("max", "min")}
    return {"check": f"  ↳ {group.name}", "loss": "", "value": group.printed,
            "bound": ("\n" if stacked else ", ").join(BOUND_SHOWN[b].format(number_text(v)) for b, v in bounds.items()),
            "baseline": "—", "delta": "—", "status": STATUS_WORD[group.status]}


def messages(run: Run, write_baseline: str | None = None) -> list[tuple[str, str]]:
    """What stderr says after the table, as (level, line): each failed bound, error, note and warning
    with its check's name, then whether the baseline was written."""
    found = []
    for outcome in run.outcomes:
        name = outcome.check.name
        level = {Status.failed: "FAIL", Status.error: "error"}.get(outcome.status)
        found += [(level, f"{name}: {reason}") for reason in outcome.reasons if level]
        found += [("note", f"{name}: {note}") for note in outcome.notes]
        found += [("warning", f"{name}: {warning}") for warning in outcome.warnings]
    if write_baseline:
        found.append(("baseline", f"written to {write_baseline}" if run.all_passed else
                      f"not written to {write_baseline}: it records a run only when every check passes"))
    return found


# -- JSON ------------------------------------------------------------------------------------------------


def _finite_or_word(value: float | None) -> float | str | None:
    return None if value is None else json_number(value)


def _report(created: Any, gate_file: str, baseline: dict[str, Any] | None, verdict: str, exit_code: int,
            **rest: Any) -> dict[str, Any]:
    """The fields every JSON report starts with, in order, then ``rest``."""
    return {"schema_version": SCHEMA_VERSION, "tool": {"name": "losscli", "version": __version__},
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "gate_file": gate_file, "baseline": baseline,
            "verdict": verdict, "exit_code": exit_code, **rest}


def to_report(run: Run) -> dict[str, Any]:
    """The JSON report: schema ``losscli/report.schema.json``, version :data:`SCHEMA_VERSION`."""
    baseline = None if run.baseline is None else {"file": run.baseline.path, "created": run.baseline.created}
    counts = {"checks": len(run.outcomes), "passed": run.count(Status.passed), "failed": run.count(Status.failed),
              "errors": run.count(Status.error), "skipped": run.count(Status.skipped),
              "without_baseline": run.without_baseline}
    return _report(run.created, run.gate_file, baseline, verdict_word(run), run.exit_code, summary=counts,
                   seconds=round(run.seconds, 6), checks=[_check_json(o) for o in run.outcomes], error=None)


def error_report(stopped: Stopped) -> dict[str, Any]:
    """The JSON report of a run that stopped before any check: no checks, verdict error, and the error."""
    baseline = None if stopped.baseline is None else {"file": stopped.baseline, "created": None}
    counts = {"checks": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "without_baseline": 0}
    return _report(stopped.created, stopped.gate_file, baseline, "error", 2, summary=counts, seconds=0.0,
                   checks=[], error={"message": stopped.message, "type": stopped.error_type})


def to_metrics(run: Run) -> dict[str, float]:
    """``{"CHECK": value}``, the flat form ``dvc metrics`` and ``mlflow.log_metrics`` read: the value of every
    check that has one (a check that errored or was skipped has none and is left out)."""
    return {o.check.name: o.value for o in run.outcomes if o.value is not None}


def to_json_text(run: Run | Stopped) -> str:
    report = error_report(run) if isinstance(run, Stopped) else to_report(run)
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _check_json(outcome: Outcome) -> dict[str, Any]:
    check = outcome.check
    return {
        "name": check.name,
        "loss": check.loss.name,
        "torch": f"torch.nn.functional.{check.loss.torch_name}",
        "reduction": check.reduction.value,
        "backend": check.backend.value,
        "nan_policy": check.nan_policy.value,
        "broadcast": check.broadcast,
        "inputs": outcome.inputs,
        "parameters": check.parameters,
        "bounds": dict(check.bounds),
        "value": _finite_or_word(outcome.value),
        "dtype": outcome.dtype,
        "baseline": outcome.baseline,
        "delta": _finite_or_word(outcome.delta),
        "delta_pct": _finite_or_word(outcome.delta_pct),
        "status": outcome.status.value,
        "failed": outcome.failed,
        "message": outcome.message,
        "error_type": outcome.error_type,
        "notes": outcome.notes,
        "warnings": outcome.warnings,
        "seconds": round(outcome.seconds, 6),
        **_stats_json(outcome),
    }


def _stats_json(outcome: Outcome) -> dict[str, Any]:
    """The statistics of a check that asked for them: the keys given, the interval, the paired test, the
    groups."""
    found: dict[str, Any] = {}
    if outcome.check.stats.keys:
        found["statistics"] = outcome.check.stats.keys
    if outcome.ci is not None:
        found["ci"] = _interval_json(outcome.ci)
    c = outcome.comparison
    if c is not None:
        found["comparison"] = {"compare_to": outcome.check.stats.compare_to.spec,
                               "accepted": json_number(float(str(c.base.value[()]))),
                               "difference": json_number(c.difference), "relative": json_number(c.relative),
                               "confidence": outcome.check.stats.confidence, "low": json_number(c.low),
                               "high": json_number(c.high), "p_value": json_number(c.p_value),
                               "verdict": c.verdict.value, "resamples": c.resamples, "seed": c.seed}
    if outcome.check.stats.by is not None or outcome.check.stats.by_class:
        found["groups"] = [{"group": g.name, "count": g.count, "value": json_number(float(g.printed)),
                            "status": g.status.value, "failed": g.failed, "message": "; ".join(g.reasons) or None,
                            **({"ci": _interval_json(g.ci)} if g.ci is not None else {})} for g in outcome.groups]
    return found


def _interval_json(ci: Any) -> dict[str, Any]:
    return {"level": ci.level, "low": json_number(ci.low), "high": json_number(ci.high), "method": ci.method,
            "resamples": ci.resamples, "seed": ci.seed}


# -- JUnit XML -------------------------------------------------------------------------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even escaped: drop them."""
    return _NOT_XML.sub("", text)


def _junit_suites(gate_file: str, created: datetime, seconds: float, counts: dict[str, int]) -> ET.Element:
    """``<testsuites>`` with its one ``<testsuite>`` and the counts CI systems read: on ``<testsuites>`` only
    the attributes the Jenkins xunit-plugin schema (junit-10.xsd) allows there (no ``skipped``)."""
    time = f"{seconds:.3f}"
    root = ET.Element("testsuites", name="losscli check", time=time,
                      **{k: str(counts[k]) for k in ("tests", "failures", "errors")})
    ET.SubElement(root, "testsuite", name=_xml_text(f"losscli check {gate_file}"),
                          **{k: str(v) for k, v in counts.items()}, time=time,
                          timestamp=created.strftime("%Y-%m-%dT%H:%M:%S"))
    return root


def _junit_text(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def to_junit(run: Run) -> str:
    """One ``<testsuite>`` (in ``<testsuites>``), one ``<testcase classname="losscli.check">`` per check:
    ``<failure>`` for a failed bound or NaN, ``<error>`` for an invalid input, ``<skipped>`` for a check
    left out by --only/--skip. The counts and times are the attributes GitHub, GitLab and Jenkins read."""
    groups = [g for o in run.outcomes for g in o.groups]
    counts = {"tests": len(run.outcomes) + len(groups),
              "failures": run.count(Status.failed) + sum(g.status is Status.failed for g in groups),
              "errors": run.count(Status.error), "skipped": run.count(Status.skipped)}
    root = _junit_suites(run.gate_file, run.created, run.seconds, counts)
    suite = root[0]
    properties = ET.SubElement(suite, "properties")
    for name, value in (("losscli.version", __version__), ("gate_file", run.gate_file),
                        ("baseline", run.baseline.path if run.baseline else "")):
        ET.SubElement(properties, "property", name=name, value=_xml_text(value))
    for outcome in run.outcomes:
        case = ET.SubElement(suite, "testcase", classname="losscli.check", name=_xml_text(outcome.check.name),
                             time=f"{outcome.seconds:.3f}")
        message = _xml_text(outcome.message or "")
        if outcome.status is Status.failed:
            ET.SubElement(case, "failure", message=message, type=outcome.failed[0]).text = _xml_text(
                "\n".join(outcome.reasons))
        elif outcome.status is Status.error:
            ET.SubElement(case, "error", message=message, type=outcome.error_type or "error").text = message
        elif outcome.status is Status.skipped:
            ET.SubElement(case, "skipped", message=message)
        if outcome.status is not Status.skipped:
            ET.SubElement(case, "system-out").text = _xml_text("\n".join([_details(outcome)] + outcome.notes +
                                                                         outcome.warnings))
        for group in outcome.groups:  # a test case of its own, after its check's
            _group_case(suite, outcome, group)
    return _junit_text(root)


def _group_case(suite: ET.Element, outcome: Outcome, group: Any) -> None:
    case = ET.SubElement(suite, "testcase", classname="losscli.check", time="0.000",
                         name=_xml_text(f"{outcome.check.name} [{group.name}]"))
    if group.failed:
        message = _xml_text("; ".join(group.reasons))
        ET.SubElement(case, "failure", message=message, type=group.failed[0]).text = message
    ET.SubElement(case, "system-out").text = _xml_text(f"group {group.name} · count {group.count} · value "
                                                       f"{group.printed}")


def error_junit(stopped: Stopped) -> str:
    """A run that stopped before any check: one ``<testcase>`` named after the gate file, holding the
    ``<error>`` (as pytest reports a collection error), so the CI's test report shows why."""
    root = _junit_suites(stopped.gate_file, stopped.created, 0.0,
                         {"tests": 1, "failures": 0, "errors": 1, "skipped": 0})
    case = ET.SubElement(root[0], "testcase", classname="losscli.check", name=_xml_text(stopped.gate_file),
                         time="0.000")
    message = _xml_text(stopped.message)
    ET.SubElement(case, "error", message=message, type=stopped.error_type).text = message
    return _junit_text(root)


def _details(outcome: Outcome) -> str:
    row = cells(outcome)
    return " · ".join(f"{c} {row[c]}" for c in ("loss", "value", "bound", "baseline", "delta"))


# -- Markdown --------------------------------------------------------------------------------------------


_MARKUP = re.compile(r"([\\`*_\[\]|~])")


def _md(text: str) -> str:
    """Text shown as typed in Markdown (GitHub's): the characters that open emphasis, code, links,
    strikethrough or end a table cell are backslash-escaped, ``&`` and ``<`` written as entities (so neither
    HTML nor a literal ``&lt;`` is interpreted), and a newline, which would end the row, is a space."""
    text = _MARKUP.sub(r"\\\1", text).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _code(text: str) -> str:
    """A code span holding ``text`` exactly: fenced by more backticks than any run inside it."""
    text = text.replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _heading(mark: str, gate_file: str, verdict_line: str) -> list[str]:
    return [f"### {mark} losscli check {_code(gate_file)}", "", f"**{verdict_line}**", ""]


def to_markdown(run: Run, plots: Mapping[str, str] | None = None) -> str:
    """A table with a verdict line, for ``$GITHUB_STEP_SUMMARY`` and pull-request comments; with ``plots``
    (check name -> a relative URL: ``losscli check --plots``), a last column linking each check's plot."""
    mark = STATUS_MARK[(Status.passed, Status.failed, Status.error)[run.exit_code]]
    columns = COLUMNS + (("plot",) if plots else ())
    lines = _heading(mark, run.gate_file, verdict(run)) + [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if c in ("value", "baseline", "delta") else "---" for c in columns) + "|"]
    for outcome in run.outcomes:
        link = (plots or {}).get(outcome.check.name)
        rows = [(cells(outcome), outcome.status, f"[plot]({link})" if link else "—")]
        rows += [(group_cells(outcome, g), g.status, "") for g in outcome.groups]
        for row, status, plot in rows:
            row = {c: _md(text) for c, text in row.items()}
            row["status"] = f"{STATUS_MARK[status]} {row['status']}"
            row["plot"] = plot
            lines.append("| " + " | ".join(row[c] for c in columns) + " |")
    notes = [(o, text) for o in run.outcomes for text in o.reasons + o.notes if o.status is not Status.skipped]
    if notes:
        lines.append("")
        lines += [f"- **{_md(o.check.name)}** ({STATUS_WORD[o.status]}): {_md(text)}" for o, text in notes]
    return "\n".join(lines) + "\n"


def error_markdown(stopped: Stopped) -> str:
    """A run that stopped before any check: the heading, the verdict and the error, so a step that appends the
    summary shows why."""
    return "\n".join(_heading(STATUS_MARK[Status.error], stopped.gate_file, stopped.verdict) +
                     [f"error: {_md(stopped.message)}"]) + "\n"


__all__ = ["Stopped", "cells", "group_cells", "error_junit", "error_markdown", "error_report", "messages", "to_check_table",
           "to_json_text", "to_junit", "to_markdown", "to_metrics", "to_report", "verdict"]
