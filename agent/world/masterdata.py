"""Item and machine master data: the plant's policy parameters per SKU and per machine, as data.

Parsed from YAML text with line numbers, so every problem reads `file:line: subject: reason`.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import math
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

import structlog
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agent.adapters.memory import release_free_memory
from agent.errors import MasterDataError
from agent.model import Scalar, Value
from agent.rulebook.yamlsrc import YamlProblem, check_structure
from agent.world.shifts import ShiftCalendar, parse_calendars

log = structlog.get_logger(__name__)

# 10k items take about 2.5 MB; a file over this is refused before it is read.
MAX_MASTERDATA_BYTES: Final = 64 << 20
# libyaml's parser when present: 3x faster and 50 MB less for 10k items; same nodes.
_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Field name -> expected type, for the fields the shipped rules and derived values rely on.
ITEM_NUMBERS: Final = (
    "reorder_point",
    "safety_stock",
    "lead_time_days",
    "reorder_qty",
    "max_level",
    "unit_cost",
    "pack_size",
    "order_cost",
    "holding_cost_pct",
)
# Numbers an item may give but need not: the agent learns them otherwise (daily_usage × 365).
ITEM_OPTIONAL_NUMBERS: Final = ("annual_demand",)
ITEM_STRINGS: Final = ("supplier", "unit", "description")
MACHINE_STRINGS: Final = ("line", "description", "shift_calendar")
MACHINE_NUMBERS: Final = (
    "service_interval_h",
    "cost_per_hour",
    "avg_window_min",
    "trend_window_min",
    "stale_after_s",
)
MACHINE_LISTS: Final = ("spare_parts",)
# Set by the world state for every fact: master data must not pretend to provide them.
RESERVED: Final = frozenset(
    {"kind", "site", "sku", "machine", "ts", "projected", "on_order", "state_minutes"}
    | {  # derived for stock facts (world/stock.py)
        "on_order_agent",
        "on_order_erp",
        "open_reorders",
        "daily_usage",
        "days_of_cover",
        "dynamic_reorder_point",
        "eoq",
        "jump_share",
        "count_implausible",
        "seen_h",
        "counted_at",
        "overstock_h",
        "over_max_since",
        "received_since_count",
        "over_received",
        "last_receipt_qty",
        "usage_sum",
        "usage_days",
    }
    | {  # derived for machine facts (world/machine.py)
        "state_since",
        "idle_minutes",
        "run_hours",
        "hours_since_service",
        "last_service",
        "seen_s",
        "stale",
        "scrap_pct",
        "in_shift",
        "shift",
        "shift_minutes",
        "planned_downtime",
        "utilization_pct",
        "open_work_orders",
        "run_s",
        "service_run_s",
        "accounted_at",
        "shift_start",
        "shift_end",
        "shift_observed_from",
        "shift_run_s",
        "last_message_at",
        "lag_s",
    }
)

_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG: Final = "tag:yaml.org,2002:"
_SCALAR_TAGS: Final = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null"))
_PLAIN_TAGS: Final = _SCALAR_TAGS | {_TAG + "seq", _TAG + "map"}
_EMPTY: Final[Mapping[str, Value]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MasterData:
    """Fields per SKU (`items`) and per machine (`machines`); read-only once built."""

    items: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    machines: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    calendars: Mapping[str, ShiftCalendar] = field(default_factory=dict)
    # Of the files' text it was read from (`masterdata_digest`): a reload skips unchanged files.
    digest: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("items", "machines"):
            table: Mapping[str, Mapping[str, Value]] = getattr(self, name)
            frozen = {key: MappingProxyType(dict(fields)) for key, fields in table.items()}
            object.__setattr__(self, name, MappingProxyType(frozen))

    def item(self, sku: str) -> Mapping[str, Value]:
        return self.items.get(sku, _EMPTY)

    def machine(self, machine: str) -> Mapping[str, Value]:
        return self.machines.get(machine, _EMPTY)

    def calendar(self, machine: str) -> ShiftCalendar | None:
        """The shift calendar the machine follows (`shift_calendar`), if it names a known one."""
        name = self.machine(machine).get("shift_calendar")
        return self.calendars.get(name) if isinstance(name, str) else None

    def item_fields(self) -> dict[str, str]:
        """Field name -> "number" | "string" | "list" | "bool" over all items ("any" if mixed)."""
        return _field_types(self.items)

    def machine_fields(self) -> dict[str, str]:
        return _field_types(self.machines)


def value_type(value: Value) -> str | None:
    """The type name rules see for a master-data value; None for null (no type to offer)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    return "string"


def _field_types(table: Mapping[str, Mapping[str, Value]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for fields in table.values():
        for name, value in fields.items():
            kind = value_type(value)
            if kind is not None:
                found[name] = kind if found.get(name, kind) == kind else "any"
    return found


# --- parsing -----------------------------------------------------------------------------------


class _Problems:
    """Every problem found in one file, each `file:line: subject: reason`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, node: Node, subject: str, reason: str) -> None:
        self.lines.append(f"{self.source}:{node.start_mark.line + 1}: {subject or '-'}: {reason}")

    def raise_any(self) -> None:
        if self.lines:
            raise MasterDataError("\n".join(self.lines))


# Checks one field's value; returns the reason it is wrong, or None.
FieldCheck = Callable[[Value], str | None]


def _number(minimum: float | None) -> FieldCheck:
    def check(value: Value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {_show(value)}"
        if minimum is not None and value < minimum:
            return f"must be at least {minimum:g}, got {value}"
        return None

    return check


def _text(value: Value) -> str | None:
    return None if isinstance(value, str) else f"expected text, got {_show(value)} (quote it)"


def _text_list(value: Value) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return None
    return f"expected a list of text, got {_show(value)}"


def _show(value: Value) -> str:
    return "null" if value is None else repr(value)


_ITEM_CHECKS: Final[Mapping[str, FieldCheck]] = MappingProxyType(
    {
        **{name: _number(0) for name in ITEM_NUMBERS + ITEM_OPTIONAL_NUMBERS},
        **{name: _text for name in ITEM_STRINGS},
    }
)
_MACHINE_CHECKS: Final[Mapping[str, FieldCheck]] = MappingProxyType(
    {
        **{name: _text for name in MACHINE_STRINGS},
        **{name: _number(0) for name in MACHINE_NUMBERS},
        **{name: _text_list for name in MACHINE_LISTS},
    }
)


def _machine_check(name: str) -> FieldCheck | None:
    if name in _MACHINE_CHECKS:
        return _MACHINE_CHECKS[name]
    if name.startswith(("max_", "min_")) and len(name) > 4:
        return _number(None)  # thresholds: a minimum temperature may be below zero
    return None


def parse_items(text: str, source: str) -> dict[str, dict[str, Value]]:
    """`items:` SKU -> fields; raise MasterDataError listing every problem."""
    return _parse(text, source, "items", _ITEM_CHECKS.get, _check_item)


def parse_machines(text: str, source: str) -> dict[str, dict[str, Value]]:
    """`machines:` machine id -> fields; raise MasterDataError listing every problem."""
    return _parse(text, source, "machines", _machine_check, _check_machine, also=("calendars",))


def parse_machine_calendars(
    text: str, source: str, machines: Mapping[str, Mapping[str, Value]]
) -> dict[str, ShiftCalendar]:
    """The `calendars:` table of the machines file; a machine naming an unknown one is a problem
    once the file defines calendars at all."""
    _check_structure(text, source)
    try:
        document = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise MasterDataError(f"{source}: not valid YAML: {exc}") from exc
    raw = document.get("calendars") if isinstance(document, dict) else None
    try:
        calendars = parse_calendars(raw, source)
    except MasterDataError as exc:
        raise _located_calendar_problems(exc, text, source, raw) from exc
    if calendars:
        wrong = [
            f"{source}:{_line_of(text, ['machines', machine, 'shift_calendar'])}: {machine}:"
            f" shift_calendar {fields['shift_calendar']!r} is not in calendars"
            f" (known: {', '.join(sorted(calendars))})"
            for machine, fields in machines.items()
            if isinstance(fields.get("shift_calendar"), str)
            and fields["shift_calendar"] not in calendars
        ]
        if wrong:
            raise MasterDataError("\n".join(wrong))
    return calendars


_STEP: Final = re.compile(r"\.([^.\[:]+)|\[(\d+)\]")


def _located_calendar_problems(
    error: MasterDataError, text: str, source: str, raw: object
) -> MasterDataError:
    """The calendar problems (`source: calendars.<name>.shifts[0].start: reason`) with the line
    of the value they name, as every other master-data problem has."""
    names = sorted(map(str, raw), key=len, reverse=True) if isinstance(raw, Mapping) else []
    head = f"{source}: calendars."
    located: list[str] = []
    for problem in str(error).split("\n"):
        where = problem[len(head) :].split(": ", 1)[0] if problem.startswith(head) else None
        name = next((n for n in names if where and _names(where, n)), None)
        if where is None or name is None:
            located.append(problem)
            continue
        path: list[str | int] = ["calendars", name]
        for key, index in _STEP.findall(where[len(name) :]):
            path.append(int(index) if index else key)
        located.append(f"{source}:{_line_of(text, path)}: {problem[len(source) + 2 :]}")
    return MasterDataError("\n".join(located))


def _names(where: str, name: str) -> bool:
    return where.startswith(name) and where[len(name) : len(name) + 1] in ("", ".", "[")


def _line_of(text: str, path: Sequence[str | int]) -> int:
    """The line of the value at `path` (mapping keys, list indexes) in a YAML text; that of
    the deepest part found when it is not all there (1 if nothing is)."""
    try:
        node: Node | None = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return 1
    line = 1
    for step in path:
        found: Node | None = None
        if isinstance(node, MappingNode) and isinstance(step, str):
            found = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            found = node.value[step]
        if found is None:
            break
        node = found
        line = found.start_mark.line + 1
    return line


def load_masterdata(items_path: Path, machines_path: Path) -> MasterData:
    """Read both files; a missing or unreadable one names the setting that points at it."""
    items_text = _read(items_path, "masterdata.items")
    items = parse_items(items_text, str(items_path))
    machines_text = _read(machines_path, "masterdata.machines")
    machines = parse_machines(machines_text, str(machines_path))
    calendars = parse_machine_calendars(machines_text, str(machines_path), machines)
    digest = _digest(items_text, machines_text)
    del items_text, machines_text
    for machine, fields in machines.items():
        parts = fields.get("spare_parts")
        unknown = [p for p in parts if p not in items] if isinstance(parts, list) else []
        if unknown:
            log.warning("spare_part_not_in_items", machine=machine, skus=unknown)
    log.info(
        "masterdata_loaded", items=len(items), machines=len(machines), calendars=len(calendars)
    )
    # Parsing 10k items peaks at about 80 MB of YAML nodes (some in reference cycles), and the
    # 12 MB of tables left are spread over the allocator's arenas among the freed nodes, which
    # keeps those arenas from going back to the system. Rebuilt from a pickle once the parse's
    # objects are all gone, the tables sit in fresh arenas: RSS about 60 MB lower for 10k items.
    blob = pickle.dumps((items, machines), protocol=pickle.HIGHEST_PROTOCOL)
    del items, machines
    gc.collect()
    items, machines = pickle.loads(blob)
    del blob
    release_free_memory()
    return MasterData(items, machines, calendars, digest)


def masterdata_digest(items_path: Path, machines_path: Path) -> str:
    """What `MasterData.digest` would be for the files as they are now ("" if unreadable)."""
    try:
        return _digest(*(p.read_text(encoding="utf-8") for p in (items_path, machines_path)))
    except (OSError, UnicodeDecodeError):
        return ""


def _digest(items_text: str, machines_text: str) -> str:
    digest = hashlib.sha256(items_text.encode() + b"\0" + machines_text.encode())
    return digest.hexdigest()[:12]


def masterdata_changes(old: MasterData, new: MasterData) -> dict[str, int]:
    """How many items, machines and calendars a change adds, changes and removes."""
    counts: dict[str, int] = {}
    tables: tuple[tuple[str, Mapping[str, object], Mapping[str, object]], ...] = (
        ("items", old.items, new.items),
        ("machines", old.machines, new.machines),
        ("calendars", old.calendars, new.calendars),
    )
    for name, before, after in tables:
        counts[f"{name}_added"] = len(after.keys() - before.keys())
        counts[f"{name}_changed"] = sum(
            1 for k in after.keys() & before.keys() if after[k] != before[k]
        )
        counts[f"{name}_removed"] = len(before.keys() - after.keys())
    return counts


_LOCATED: Final = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<reason>.*)$")
_UNLOCATED: Final = re.compile(r"^(?P<file>[^:]+): (?P<reason>.*)$")


def first_problem(error: MasterDataError) -> tuple[str, int, str]:
    """The first problem of an error as (file, line, reason); line 0 when it has none."""
    text = str(error).split("\n", 1)[0]
    located = _LOCATED.match(text)
    if located:
        return located["file"], int(located["line"]), located["reason"]
    unlocated = _UNLOCATED.match(text)
    if unlocated:
        return unlocated["file"], 0, unlocated["reason"]
    return "", 0, text


def _check_structure(text: str, source: str) -> None:
    """Size, nesting and anchors (only `<<: *template` merges, bounded), as for rule files."""
    try:
        check_structure(text, MAX_MASTERDATA_BYTES, _LOADER, merge_keys=True)
    except YamlProblem as exc:
        raise MasterDataError(f"{source}:{exc.line}: -: {exc.reason}") from exc


def _read(path: Path, setting: str) -> str:
    try:
        if path.stat().st_size > MAX_MASTERDATA_BYTES:  # not read at all: it could be huge
            limit = f"the file is over the limit of {MAX_MASTERDATA_BYTES} bytes"
            raise MasterDataError(f"{path}:1: -: {limit} (set by {setting})")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MasterDataError(f"{path}: file not found (set by {setting})") from exc
    except OSError as exc:
        raise MasterDataError(f"{path}: cannot read it: {exc.strerror} (set by {setting})") from exc
    except UnicodeDecodeError as exc:
        raise MasterDataError(f"{path}: not UTF-8 text (set by {setting})") from exc


# Checks across the fields of one subject: (subject, fields, their nodes, problems found).
SubjectCheck = Callable[[str, dict[str, Value], dict[str, Node], _Problems], None]


def _parse(
    text: str,
    source: str,
    top: str,
    check_for: Callable[[str], FieldCheck | None],
    check_subject: SubjectCheck,
    also: tuple[str, ...] = (),
) -> dict[str, dict[str, Value]]:
    problems = _Problems(source)
    _check_structure(text, source)
    try:
        loader = _LOADER(text)
    except yaml.YAMLError as exc:  # e.g. a control character in the text
        raise MasterDataError(f"{source}:1: -: not valid YAML: {exc}") from exc
    try:
        table = _top_table(loader, top, problems, also)
        result: dict[str, dict[str, Value]] = {}
        if table is None:
            problems.raise_any()
            return result
        extra_types: dict[str, tuple[str, str, int]] = {}
        for key_node, value_node in _entries(loader, table, problems, "listed twice"):
            subject = _subject(key_node, problems)
            if subject is None:
                continue
            fields, nodes = _fields(loader, subject, key_node, value_node, check_for, problems)
            check_subject(subject, fields, nodes, problems)
            _check_extra_types(subject, fields, nodes, check_for, extra_types, problems)
            result[subject] = fields
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        problems.lines.append(f"{source}:{line}: -: not valid YAML: {reason}")
    except yaml.YAMLError as exc:
        problems.lines.append(f"{source}:1: -: not valid YAML: {exc}")
    finally:
        loader.dispose()
    problems.raise_any()
    return result


def _top_table(
    loader: yaml.SafeLoader, top: str, problems: _Problems, also: tuple[str, ...] = ()
) -> MappingNode | None:
    root: Node | None = loader.get_single_node()
    expected = f"expected a mapping `{top}:` of entries"
    if root is None or not isinstance(root, MappingNode) or root.tag != _TAG + "map":
        problems.lines.append(f"{problems.source}:1: -: {expected}")
        return None
    table: MappingNode | None = None
    for key_node, value_node in _entries(loader, root, problems, "listed twice"):
        if isinstance(key_node, ScalarNode) and key_node.value in also:
            continue  # parsed on its own (e.g. the machines file's `calendars:`)
        if not (isinstance(key_node, ScalarNode) and key_node.value == top):
            problems.add(key_node, "-", f"unknown top-level key {_key_text(key_node)} ({expected})")
            continue
        if _is_null(value_node):
            table = MappingNode(_TAG + "map", [], value_node.start_mark, value_node.end_mark)
        elif isinstance(value_node, MappingNode) and value_node.tag == _TAG + "map":
            table = value_node
        else:
            problems.add(value_node, "-", f"`{top}:` must be a mapping of id -> fields")
    if table is None and not problems.lines:
        problems.lines.append(f"{problems.source}:1: -: {expected}")
    return table


def _entries(
    loader: yaml.SafeLoader, node: MappingNode, problems: _Problems, twice: str, subject: str = ""
) -> list[tuple[Node, Node]]:
    """The mapping's (key, value) nodes: a key written twice is a problem; merged (`<<: *x`)
    values are overridden by the keys written next to them, as YAML says."""
    written: dict[str, Node] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag != _TAG + "merge":
            if key_node.value in written:
                first = written[key_node.value].start_mark.line + 1
                reason = f"{twice.format(repr(key_node.value))} (first at line {first})"
                problems.add(key_node, subject or key_node.value, reason)
            written.setdefault(key_node.value, key_node)
    loader.flatten_mapping(node)
    last: dict[object, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        text = key_node.value if isinstance(key_node, ScalarNode) else id(key_node)
        last[text] = (key_node, value_node)
    return list(last.values())


def _subject(key_node: Node, problems: _Problems) -> str | None:
    """The SKU or machine id exactly as written (`0012` stays `0012`, as in the topic)."""
    if not isinstance(key_node, ScalarNode) or _is_null(key_node):
        problems.add(key_node, "-", "an id must be plain text")
        return None
    subject = str(key_node.value)
    if not subject or subject != subject.strip():
        problems.add(key_node, repr(subject), "an id must be non-empty, without outer spaces")
        return None
    if {"/", "+", "#", "\0"} & set(subject):
        problems.add(key_node, subject, "an id cannot hold '/', '+', '#': it is one topic level")
        return None
    return subject


class _Refused(Exception):
    """One value refused: the node it stands at and why."""

    def __init__(self, node: Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


def _fields(
    loader: yaml.SafeLoader,
    subject: str,
    key_node: Node,
    value_node: Node,
    check_for: Callable[[str], FieldCheck | None],
    problems: _Problems,
) -> tuple[dict[str, Value], dict[str, Node]]:
    fields: dict[str, Value] = {}
    nodes: dict[str, Node] = {}
    if not isinstance(value_node, MappingNode) or value_node.tag != _TAG + "map":
        problems.add(key_node, subject, "expected a mapping of fields (name: value)")
        return fields, nodes
    for name_node, node in _entries(loader, value_node, problems, "field {} set twice", subject):
        name = name_node.value if isinstance(name_node, ScalarNode) else None
        if not isinstance(name, str) or not _NAME.match(name):
            word = "must be a word (letters, digits, _), so rules can name it"
            problems.add(name_node, subject, f"field name {_key_text(name_node)} {word}")
            continue
        if name in RESERVED:
            problems.add(name_node, subject, f"{name!r} is set by the agent, not by master data")
            continue
        nodes[name] = node
        check = check_for(name)
        try:
            value = _value(loader, node)
            reason = check(value) if check else None
        except _Refused as refused:
            problems.add(refused.node, subject, f"{name}: {refused.reason}")
            continue
        if reason:
            problems.add(node, subject, f"{name}: {reason}")
            continue
        if check is None:
            _suggest_known(subject, name, check_for)
        fields[name] = value
    return fields, nodes


def _value(loader: yaml.SafeLoader, node: Node) -> Value:
    """A scalar or a flat list of scalars; plain YAML types only."""
    if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
        return [_scalar(loader, child) for child in node.value]
    return _scalar(loader, node)


def _scalar(loader: yaml.SafeLoader, node: Node) -> Scalar:
    if node.tag == _TAG + "timestamp":
        raise _Refused(node, f"dates are not supported: quote {node.value!r} to keep it as text")
    if node.tag not in _PLAIN_TAGS:
        shown = node.tag.replace(_TAG, "!!", 1)
        raise _Refused(node, f"tag {shown} is not allowed (plain YAML only)")
    if not isinstance(node, ScalarNode):
        raise _Refused(node, "expected a value or a flat list of values, nothing nested")
    value: Scalar = loader.construct_object(node)
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused(node, f"expected a finite number, got {node.value}")
    return value


def _suggest_known(subject: str, name: str, check_for: Callable[[str], FieldCheck | None]) -> None:
    known = list(_ITEM_CHECKS) + list(_MACHINE_CHECKS)
    close = [k for k in difflib.get_close_matches(name, known, n=1, cutoff=0.85) if check_for(k)]
    if close:  # allowed (plants add fields), but a typo would silently disable a rule
        log.warning("masterdata_field_unknown", subject=subject, field=name, did_you_mean=close[0])


def _check_extra_types(
    subject: str,
    fields: dict[str, Value],
    nodes: dict[str, Node],
    check_for: Callable[[str], FieldCheck | None],
    first_seen: dict[str, tuple[str, str, int]],
    problems: _Problems,
) -> None:
    """A plant's own field has one type across the file, so rules can be type-checked."""
    for name, value in fields.items():
        kind = value_type(value)
        if kind is None or check_for(name) is not None:
            continue
        line = nodes[name].start_mark.line + 1
        known = first_seen.setdefault(name, (kind, subject, line))
        if known[0] != kind:
            reason = f"is a {kind} here but a {known[0]} for {known[1]} (line {known[2]})"
            problems.add(nodes[name], subject, f"{name}: {reason}; use one type per field")


def _check_item(
    sku: str, fields: dict[str, Value], nodes: dict[str, Node], problems: _Problems
) -> None:
    """Reorder parameters that contradict each other would make the reorder rule misfire."""
    safety, point, most = (fields.get(k) for k in ("safety_stock", "reorder_point", "max_level"))
    if _numbers(safety, point) and safety > point:  # type: ignore[operator]
        reason = f"safety_stock {safety} is above reorder_point {point}"
        problems.add(nodes["safety_stock"], sku, reason)
    if _numbers(point, most) and most < point:  # type: ignore[operator]
        problems.add(nodes["max_level"], sku, f"max_level {most} is below reorder_point {point}")


def _check_machine(
    machine: str, fields: dict[str, Value], nodes: dict[str, Node], problems: _Problems
) -> None:
    for name, low in fields.items():
        high = fields.get("max_" + name[4:]) if name.startswith("min_") else None
        if _numbers(low, high) and low > high:  # type: ignore[operator]
            problems.add(nodes[name], machine, f"{name} {low} is above max_{name[4:]} {high}")


def _numbers(*values: Value) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


def _key_text(node: Node) -> str:
    return repr(node.value) if isinstance(node, ScalarNode) else "(not plain text)"
