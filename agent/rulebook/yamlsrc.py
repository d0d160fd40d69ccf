"""YAML that remembers where things are: mappings and lists carry the line of each entry.

Safe loading only (no tags beyond YAML's plain types); duplicate keys are refused, not merged.
Hostile files are refused before anything is built from them (`check_structure`): over a size,
nested too deep, or with anchors and aliases, which let a 1 kB file stand for gigabytes of text
("billion laughs": 9 levels of 9 aliases, expanded by a `str()` of `description` or `key`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, SequenceNode

# A rule file (or rule test file) is a few kB; 1 MiB is far beyond any real one.
MAX_RULE_FILE_BYTES: Final = 1 << 20
# Nesting of mappings and lists, block or flow; a rule file needs about 6 levels.
MAX_DEPTH: Final = 64
# Master data merge keys (`<<: *template`): key/value pairs copied in all, over the whole file.
MAX_MERGED_ENTRIES: Final = 1_000_000


class LineMap(dict[Any, Any]):
    """A mapping with `line` (its own) and `lines[key]` (where each key stands), 1-based."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    line: int = 0
    lines: list[int]


class YamlProblem(Exception):
    """`syntax`: a YAML mistake (look at indentation and quoting), not a refused construct."""

    def __init__(self, line: int, reason: str, syntax: bool = True, hint: str = "") -> None:
        self.line = line
        self.reason = reason
        self.syntax = syntax
        self.hint = hint  # what to do about it, when the reason alone does not say
        super().__init__(f"line {line}: {reason}")


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError as exc:
            raise YamlProblem(line, "a mapping key must be plain text") from exc
        if key in result:
            raise YamlProblem(line, f"duplicate key {key!r} (first at line {result.lines[key]})")
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


# PyYAML's scanner slows down quadratically with flow nesting (`[[[[...`: 5,000 levels took
# 2-5 s, found by the fuzz tests); no rule file needs more than a few levels.
MAX_FLOW_DEPTH = 64


def _check_flow_depth(text: str) -> None:
    """Refuse absurd `[`/`{` nesting before PyYAML sees it (brackets in quotes count too)."""
    depth = 0
    line = 1
    for char in text:
        if char in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                reason = f"YAML nested deeper than {MAX_FLOW_DEPTH} levels"
                raise YamlProblem(line, reason, syntax=False)
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "\n":
            line += 1


def _check_flow_depth_fast(text: str) -> None:
    # str.count runs in C: the character loop only for a text with enough brackets to matter.
    if text.count("[") + text.count("{") > MAX_FLOW_DEPTH:
        _check_flow_depth(text)


def check_structure(
    text: str,
    max_bytes: int,
    loader: Callable[[str], Any] = yaml.SafeLoader,
    merge_keys: bool = False,
) -> None:
    """Refuse, as a `YamlProblem` with the line, a text longer than `max_bytes`, nested deeper
    than MAX_DEPTH, or holding an anchor (`&x`) or alias (`*x`). With `merge_keys` (master data),
    `<<: *x` is allowed where `&x` is a mapping that holds no anchor or merge itself, and the
    pairs so copied are counted against MAX_MERGED_ENTRIES: the expansion stays linear.

    Reads PyYAML's event stream with the parser `loader` brings (the one that will build the
    document), which keeps nothing and does not recurse. YAML errors are left to the build,
    which reports them in its own words."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlProblem(1, f"the file is over the limit of {max_bytes} bytes", syntax=False)
    _check_flow_depth_fast(text)
    try:
        parser = loader(text)
        try:
            if "&" in text or "*" in text:
                _check_events(parser, merge_keys)
            else:  # no anchor or alias can be written: only the nesting to check, 3x faster
                _check_depth(parser)
        finally:
            parser.dispose()
    except yaml.YAMLError:
        pass  # the build reports it, in its own words


def _check_depth(parser: Any) -> None:
    depth = 0
    for event in iter(parser.get_event, None):
        kind = type(event)
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblem(event.start_mark.line + 1, _TOO_DEEP, syntax=False)
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            depth -= 1


def _check_events(parser: Any, merge_keys: bool) -> None:
    # Per open collection: is it a mapping, is its next node a key, and the last key's text.
    stack: list[list[Any]] = []
    anchored: dict[str, int] = {}  # merge anchors -> scalars they hold
    inside: tuple[str, int, int] | None = None  # the anchored mapping open: name, depth, line
    counted = 0  # scalars within `inside`
    merged = 0
    while True:
        event: Event | None = parser.get_event()
        if event is None:
            return
        line = event.start_mark.line + 1 if event.start_mark else 1
        is_key = bool(stack) and stack[-1][0] and stack[-1][1]
        after_merge = bool(stack) and stack[-1][0] and not stack[-1][1] and stack[-1][2] == "<<"
        if isinstance(event, AliasEvent):
            if not (merge_keys and after_merge) or inside is not None:
                raise YamlProblem(line, _ONLY_MERGES if merge_keys else _NO_ALIASES, syntax=False)
            merged += anchored.get(event.anchor or "", 0)
            if merged > MAX_MERGED_ENTRIES:
                reason = f"merge keys copy over {MAX_MERGED_ENTRIES} entries"
                raise YamlProblem(line, reason, syntax=False)
        elif isinstance(event, NodeEvent) and event.anchor is not None:
            if not merge_keys or not isinstance(event, MappingStartEvent) or inside is not None:
                raise YamlProblem(line, _ONLY_MERGES if merge_keys else _NO_ALIASES, syntax=False)
            inside = (event.anchor, len(stack) + 1, line)
            counted = 0
        if is_key:
            stack[-1][2] = event.value if isinstance(event, ScalarEvent) else None
        if isinstance(event, ScalarEvent):
            counted += 1
        if isinstance(event, NodeEvent) and stack and stack[-1][0]:
            stack[-1][1] = not stack[-1][1]  # key, value, key, ...
        if isinstance(event, CollectionStartEvent):
            stack.append([isinstance(event, MappingStartEvent), True, None])
            if len(stack) > MAX_DEPTH:
                raise YamlProblem(line, _TOO_DEEP, syntax=False)
        elif isinstance(event, CollectionEndEvent):
            if inside is not None and len(stack) == inside[1]:
                anchored[inside[0]] = counted
                inside = None
            stack.pop()


_TOO_DEEP: Final = f"YAML nested deeper than {MAX_DEPTH} levels"
_NO_ALIASES: Final = "YAML anchors and aliases (&name, *name) are not allowed: write the values out"
_ONLY_MERGES: Final = (
    "YAML aliases are allowed only as `<<: *name`, merging a mapping `&name` that holds"
    " no anchor or merge itself"
)


def load_yaml(text: str, max_bytes: int = MAX_RULE_FILE_BYTES) -> Any:
    """Parse one YAML document; raise `YamlProblem` with a line for anything wrong with it."""
    check_structure(text, max_bytes, _LineLoader)
    try:
        loader = _LineLoader(text)
        try:
            node: Node | None = loader.get_single_node()
            if node is None:
                return None
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or ""
        if "'\\t'" in problem or "tab character" in problem:
            tab = _tab_problem(text, line)
            if tab is not None:
                raise tab from exc
        context = exc.context or ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" (from line {exc.context_mark.line + 1})"
        reason = ", ".join(part for part in (context, exc.problem or "") if part)
        raise YamlProblem(line, f"YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"YAML: {exc}") from exc
    except RecursionError as exc:
        raise YamlProblem(1, "YAML nested too deeply") from exc


def _tab_problem(text: str, line: int) -> YamlProblem | None:
    """PyYAML's words for a tab ("found character '\\t' that cannot start any token") name no
    column and no remedy: the tab on the failing line (or the one before) is reported as what
    it is, with its column."""
    lines = text.splitlines()
    for number in (line, line - 1):
        if 1 <= number <= len(lines) and "\t" in lines[number - 1]:
            column = lines[number - 1].index("\t") + 1
            return YamlProblem(
                number,
                f"a tab character at column {column}",
                hint="YAML indents with spaces only: replace the tab with spaces",
            )
    return None
