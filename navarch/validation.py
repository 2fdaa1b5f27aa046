"""Reading user-written YAML and reporting every problem in it at once.

Each problem names the file, the key path inside it (`pools.training.max_nodes`), the line,
the bad value and what was expected. Unknown keys get a "did you mean" suggestion, because
the Go Navarch silently ignored them and hid typos.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)

if TYPE_CHECKING:
    import yaml

KeyPath = tuple[str | int, ...]

_MISSING = object()


# True while a stored model (one read back from workflow history) is being decoded.
_LENIENT: ContextVar[bool] = ContextVar("navarch_lenient_decoding", default=False)


@contextlib.contextmanager
def lenient_decoding() -> Iterator[None]:
    """Decode strict models inside as stored ones: their unknown keys are dropped, so a key
    that a later version removed from the config never breaks an old history."""
    token = _LENIENT.set(True)
    try:
        yield
    finally:
        _LENIENT.reset(token)


class StrictModel(BaseModel):
    """Base for models of what people write: unknown keys are errors, except where the model
    is read back as part of a stored one (`lenient_decoding`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _drop_unknown_keys_when_stored(cls, data: Any,
                                       handler: ModelWrapValidatorHandler[Any]) -> Any:
        if _LENIENT.get() and isinstance(data, dict):
            known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
            data = {k: v for k, v in data.items() if k in known}
        return handler(data)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file."""

    file: str
    path: KeyPath
    message: str
    value: Any = _MISSING
    line: int | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        text = f"{where}: {format_path(self.path)}: {self.message}"
        if self.value is not _MISSING and not (
            isinstance(self.value, str) and repr(self.value) in self.message
        ):
            text += f" (got {shorten(self.value)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "path": format_path(self.path),
            "line": self.line,
            "message": self.message,
            "severity": self.severity,
        }
        if self.value is not _MISSING:
            out["value"] = _jsonable(self.value)
        return out


def shorten(value: Any, limit: int = 80) -> str:
    """A value's repr, cut to `limit` characters, for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# Free text that people send or remote services answer (reasons, details, error messages)
# is kept to this many characters, so a node's or pool's state stays far below Temporal's
# payload limits whatever is sent.
MAX_TEXT = 1024


def truncate_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, or its first characters and a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 40)  # room for the marker
    return f"{text[:keep]}... [{len(text) - keep} more characters cut]"


def _bounded(value: Any) -> Any:
    return truncate_text(value) if isinstance(value, str) else value


# A str field that truncates instead of refusing: a long reason is kept, cut, with a marker.
BoundedText = Annotated[str, BeforeValidator(_bounded)]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


class ValidationFailed(Exception):
    """A file has one or more errors; `problems` lists all of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class YamlDocument:
    """A parsed YAML file plus the line of every key path, for error messages."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)


# Limits on what a YAML file may make the loader do: a config, policy or scenario is far
# below each, and a hostile or broken file meets one in well under a second.
MAX_YAML_BYTES = 8 * 1024 * 1024
MAX_YAML_DEPTH = 64  # nested mappings and lists
MAX_YAML_VALUES = 200_000  # values once aliases are expanded (an "alias bomb" is billions)


def load_yaml(path: str | Path, *, text: str | None = None) -> YamlDocument:
    """Parse a YAML file; a syntax error, a duplicate key, or a file too large, too deep or
    expanding too far through aliases becomes a Problem with its line."""
    import yaml  # not at module level: the node agent never reads YAML

    name = str(path)
    if text is None:
        try:
            size = Path(path).stat().st_size
            if size > MAX_YAML_BYTES:
                raise ValidationFailed([Problem(name, (), f"file is {size} bytes; the "
                                                f"limit is {MAX_YAML_BYTES} bytes")])
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValidationFailed([Problem(name, (), "file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationFailed([Problem(name, (), f"cannot read file: {exc}")]) from None
    if len(text) > MAX_YAML_BYTES:
        raise ValidationFailed([Problem(name, (), f"text is {len(text)} characters; the "
                                        f"limit is {MAX_YAML_BYTES}")])
    try:
        _check_shape(name, text)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            duplicates = _duplicate_keys(name, node) if node is not None else []
            if duplicates:
                raise ValidationFailed(duplicates)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationFailed(
            [Problem(name, (), f"not valid YAML{col}: {problem}", line=line)]
        ) from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return YamlDocument(name, data, lines)


def _check_shape(name: str, text: str) -> None:
    """One streaming pass over the parser's events, before anything is built: refuse
    nesting deeper than MAX_YAML_DEPTH and aliases that expand past MAX_YAML_VALUES."""
    import yaml

    sizes: dict[str, int] = {}  # anchor -> values it stands for, expanded
    open_counts: list[tuple[str | None, int]] = []  # (anchor, values so far) per open node
    total = 0

    def add(count: int, mark: Any) -> None:
        nonlocal total
        total += count
        if open_counts:
            anchor, so_far = open_counts[-1]
            open_counts[-1] = (anchor, so_far + count)
        if total > MAX_YAML_VALUES:
            raise ValidationFailed([Problem(
                name, (), f"expands to more than {MAX_YAML_VALUES} values through aliases "
                "(an alias bomb?); write the values out or use fewer aliases",
                line=mark.line + 1 if mark else None)])

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_counts) >= MAX_YAML_DEPTH:
                raise ValidationFailed([Problem(
                    name, (), f"nested more than {MAX_YAML_DEPTH} levels deep",
                    line=event.start_mark.line + 1 if event.start_mark else None)])
            open_counts.append((event.anchor, 1))
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_counts.pop()
            if anchor:
                sizes[anchor] = count
            if open_counts:
                parent, so_far = open_counts[-1]
                open_counts[-1] = (parent, so_far + count)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                sizes[event.anchor] = 1
            add(1, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            add(sizes.get(event.anchor or "", 1), event.start_mark)


def _duplicate_keys(name: str, root: yaml.Node) -> list[Problem]:
    """Every key written twice in one mapping, with the lines of both: YAML would keep the
    last silently, and a pool written twice would lose the first."""
    import yaml

    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue  # an alias: checked where its anchor is
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key, line = key_node.value, key_node.start_mark.line + 1
                    if key in first and key != "<<":
                        problems.append(Problem(
                            name, (*path, key), f"duplicate key {key!r} (first at line "
                            f"{first[key]}, again at line {line}); the first would be lost",
                            line=line))
                    first.setdefault(key, line)
                    stack.append((value_node, (*path, key)))
                else:
                    stack.append((value_node, path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _index_lines(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int],
                 seen: set[int] | None = None) -> None:
    """The line of every key path. An aliased node is indexed once, where its anchor is:
    following aliases again would walk the expanded tree."""
    import yaml

    seen = set() if seen is None else seen
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            out[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out, seen)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _allowed_keys(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys the model at `loc` accepts, walking nested models, lists and dicts."""
    annotation: Any = model
    parts = list(loc)
    for _ in range(64):
        annotation = _strip(annotation)
        if not parts:
            break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            part = parts.pop(0)
            info = annotation.model_fields.get(str(part)) or next(
                (f for f in annotation.model_fields.values() if f.alias == part), None
            )
            if info is None:
                return []
            annotation = info.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (dict, list) and args:
            parts.pop(0)
            annotation = args[-1]
            continue
        return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def _strip(annotation: Any) -> Any:
    """Peel Optional / Union / Annotated down to the one type that carries structure."""
    for _ in range(8):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            structured = [
                a for a in args
                if typing.get_origin(a) in (dict, list)
                or (isinstance(a, type) and issubclass(a, BaseModel))
            ]
            annotation = structured[0] if structured else args[0]
            continue
        break
    return annotation


def _describe_constraint(kind: str, ctx: dict[str, Any]) -> str | None:
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return "expected a number " + bounds[kind].format(**ctx)
    if kind in ("literal_error", "enum"):
        return f"expected one of {ctx.get('expected')}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}"
    return None


_EXPECTED = {
    "missing": "this key is required",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
}


def problems_from_pydantic(
    doc: YamlDocument,
    model: type[BaseModel],
    error: ValidationError,
    *,
    prefix: KeyPath = (),
) -> list[Problem]:
    """Turn pydantic's errors into Problems that name the path, the value and a fix."""
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
        kind = err["type"]
        value = err.get("input", _MISSING)
        full = (*prefix, *loc)
        line = doc.line_of(full)
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            allowed = _allowed_keys(model, loc[:-1])
            hint = suggest(key, allowed)
            message = f"unknown key {key!r}"
            if hint:
                message += f"; did you mean {hint!r}?"
            elif allowed:
                message += f"; expected one of: {', '.join(sorted(allowed))}"
            problems.append(Problem(doc.file, full, message, line=line))
            continue
        if kind == "missing":
            problems.append(Problem(doc.file, full, "this key is required", line=line))
            continue
        ctx = dict(err.get("ctx") or {})
        message = _EXPECTED.get(kind) or _describe_constraint(kind, ctx) or str(err["msg"])
        message = message.removeprefix("Value error, ")
        if kind in ("literal_error", "enum") and isinstance(value, str):
            options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            hint = suggest(value, options)
            if hint:
                message += f"; did you mean {hint!r}?"
        if isinstance(value, dict | list) or kind == "value_error":
            value = _MISSING  # the message says what is wrong; a dump of the block would not
        problems.append(Problem(doc.file, full, message, value=value, line=line))
    return problems
