"""YAML that remembers where things are: mappings and lists carry the line of each entry.

Safe loading only (no tags beyond YAML's plain types); duplicate keys are refused, not merged.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode


class LineMap(dict[Any, Any]):
    """A mapping with `line` (its own) and `lines[key]` (where each key stands), 1-based."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    line: int = 0
    lines: list[int]


class YamlProblem(Exception):
    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
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
                raise YamlProblem(line, f"YAML nested deeper than {MAX_FLOW_DEPTH} levels")
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "\n":
            line += 1


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raise `YamlProblem` with a line for anything wrong with it."""
    _check_flow_depth(text)
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
        context = exc.context or ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" (from line {exc.context_mark.line + 1})"
        reason = ", ".join(part for part in (context, exc.problem or "") if part)
        raise YamlProblem(line, f"YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"YAML: {exc}") from exc
    except RecursionError as exc:
        raise YamlProblem(1, "YAML nested too deeply") from exc
