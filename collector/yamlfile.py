"""YAML loading that remembers where every key stands, so errors can name file and line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from collector.errors import UserError

Loc = tuple[str | int, ...]
MAX_NODES = 100_000  # values in a document after alias expansion
MAX_DEPTH = 64


@dataclass
class YamlDocument:
    """Parsed YAML data plus the line (1-based) of every mapping key and sequence item."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest prefix of `loc` that exists in the file."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _index_lines(item, (*loc, i), lines)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing past MAX_DEPTH (PyYAML's composer recurses per level)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise UserError(f"{self.name}:{mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _check_size(root: yaml.Node, name: str) -> None:
    """Refuse a document whose expanded tree is huge (alias bombs) or deep, before anything walks it.

    Aliases share nodes in the composed graph, so a "billion laughs" file is small there and only
    explodes when expanded; counting expanded nodes with an explicit stack stops at the limit.
    """
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise UserError(
                f"{name}: more than {MAX_NODES} values once aliases (*name) are expanded; "
                "a configuration this large is a mistake or an alias bomb"
            )
        if depth > MAX_DEPTH:
            line = node.start_mark.line + 1
            raise UserError(f"{name}:{line}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def load_yaml(path: str | Path) -> YamlDocument:
    """Read a YAML file with `safe_load` semantics; syntax errors become a `UserError` with the line.

    Also refused with one line: text that is not UTF-8, more than MAX_NODES values after alias
    expansion, nesting deeper than MAX_DEPTH.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    loader = _BoundedLoader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_size(node, name)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise UserError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{name}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return YamlDocument(name, {} if data is None else data, lines)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _without_tags(loc: Loc, doc: YamlDocument | None) -> Loc:
    """Drop the discriminator value pydantic puts in the loc of a tagged union member (it is not a key)."""
    if doc is None:
        return loc
    node: Any = doc.data
    kept: list[str | int] = []
    for part in loc:
        if isinstance(node, dict) and part not in node and part in node.values():
            continue
        kept.append(part)
        node = _child(node, part)
    return tuple(kept)


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_model(path: str | Path, model: type[ModelT], sections: str) -> ModelT:
    """A YAML mapping validated as `model`; mistakes become a `UserError` with file:line, key and expectation."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise UserError(f"{doc.path}:1: expected a mapping with {sections}")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, doc)) from None


_SECRET_KEYS = frozenset(("token", "password", "secret"))  # not token_env / token_file: those name where it is


def _shown(loc: Loc, value: Any) -> str:
    """The rejected value as an error shows it: secrets never, URLs without their user:password@."""
    name = str(loc[-1]).lower() if loc else ""
    if name in _SECRET_KEYS:
        return f"a value of type {type(value).__name__} (not shown: a secret)"
    if isinstance(value, str) and "@" in value and "://" in value:
        scheme, _, rest = value.partition("://")
        netloc, slash, path = rest.partition("/")
        if "@" in netloc:
            value = f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}"
    return repr(value)


def describe_validation_error(
    exc: ValidationError, doc: YamlDocument | None, env_names: dict[Loc, str] | None = None
) -> str:
    """One line per problem: `file:line: key.path: got VALUE; expected ...`.

    `env_names` maps locations to the environment variable that set them, so an
    override error names the variable instead of a line that does not hold the value.
    """
    messages = []
    for err in exc.errors():
        loc: Loc = _without_tags(tuple(str(p) if not isinstance(p, int) else p for p in err["loc"]), doc)
        key = ".".join(str(p) for p in loc)
        env = (env_names or {}).get(loc)
        if env is not None:
            where = f"environment {env}"
        elif doc is not None:
            line = doc.line_of(loc)
            where = f"{doc.path}:{line}" if line else doc.path
        else:
            where = "config"
        expected = err["msg"]
        if err["type"] == "missing":
            messages.append(f"{where}: {key}: missing; a value is required")
        elif err["type"] == "extra_forbidden":
            messages.append(f"{where}: {key}: unknown key (check the spelling; see the example file)")
        else:
            messages.append(f"{where}: {key}: got {_shown(loc, err.get('input'))}; expected: {expected}")
    return "\n".join(messages)
