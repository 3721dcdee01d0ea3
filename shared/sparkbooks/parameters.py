"""Playbook parameters: parse the ``parameters`` cell, coerce CLI text, validate values.

A parameters cell holds one typed line per parameter::

    n_rows: int = 1_000_000  # rows of generated sales data
    levels: list[int] = [1, 2, 4, 8]  # concurrency levels (on the command line: -p levels 1,2,4 or '[1, 2, 4]')

Types: ``int``, ``float``, ``str``, ``bool``, ``Literal[...]``, ``list[int]``, ``list[float]``,
``list[str]``, each optionally ``| None``. A list's constraints apply to every element, plus an
optional ``length`` interval.

Constraints beyond the type (an interval or a set of choices) are declared once, in the
notebook's ``playbook.constraints`` metadata, and checked with one message template:
"The 'n_rows' parameter of playbook 'start-here' must be an int in [1000, inf). Got 0 instead."
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import MetadataError, ParameterError

__all__ = ["Parameter", "parse_parameters_cell", "validate"]

_BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_PLURAL = {"int": "ints", "float": "floats", "str": "strings", "bool": "bools"}
_TRUE, _FALSE, _NONE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}, {"none", "null"}


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: name, type, default, help and optional constraints."""

    name: str
    type: str
    default: Any
    help: str = ""
    optional: bool = False
    choices: tuple[Any, ...] | None = None
    interval: tuple[float | None, float | None] | None = None
    pattern: str | None = None
    length: tuple[int | None, int | None] | None = None  # list parameters: allowed number of elements

    @property
    def is_list(self) -> bool:
        return self.type.startswith("list[")

    @property
    def element(self) -> str:
        """The element type: ``int`` for both ``int`` and ``list[int]``."""
        return self.type[5:-1] if self.is_list else self.type

    @property
    def annotation(self) -> str:
        return f"{self.type} | None" if self.optional else self.type

    def describe(self) -> str:
        """The constraint in words: ``an int in [1000, inf)``, ``one of 'a', 'b'``, ``a list of ints in [1, 64]``."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            article = "an" if self.element == "int" else "a"
            text = f"{article} {self.element}"
            if self.interval is not None:
                lo, hi = self.interval
                left = "(-inf" if lo is None else f"[{_num(lo)}"
                right = "inf)" if hi is None else f"{_num(hi)}]"
                text += f" in {left}, {right}"
        if self.pattern is not None:
            text += f" matching {self.pattern!r}"
        if self.is_list:
            each = text.removeprefix("an ").removeprefix("a ")
            plural = each.replace(self.element, _PLURAL[self.element], 1) if not self.choices else f"values {each}"
            text = f"a list of {plural}"
            if self.length is not None:
                lo, hi = self.length
                text += f" with {_num(lo or 0)}–{'any' if hi is None else _num(hi)} elements"
        return text + (" or None" if self.optional else "")

    def parse(self, text: str, *, playbook: str = "") -> Any:
        """Turn command-line text into a value of the declared type (not yet range-checked).

        A list is written ``1,2,4`` or as JSON ``[1, 2, 4]``.
        """
        raw = text.strip()
        if self.optional and raw.lower() in _NONE:
            return None
        if self.is_list:
            if raw.startswith("["):
                try:
                    items = json.loads(raw)
                except ValueError:
                    raise ParameterError(self._message(text, playbook)) from None
                if not isinstance(items, list):
                    raise ParameterError(self._message(text, playbook))
                return [self._parse_one(str(v) if not isinstance(v, str) else v, text, playbook) for v in items]
            return [self._parse_one(part.strip(), text, playbook) for part in raw.split(",") if part.strip()]
        return self._parse_one(text, text, playbook)

    def _parse_one(self, text: str, whole: str, playbook: str) -> Any:
        raw = text.strip()
        kind = self.element
        bad = ParameterError(self._message(whole, playbook))
        if kind == "bool":
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise bad
        if kind == "int":
            number = _number(raw.replace("_", ""))
            if number is None or not float(number).is_integer():  # accept 1e6 when it is a whole number
                raise bad
            return int(number)
        if kind == "float":
            number = _number(raw.replace("_", ""))
            if number is None:
                raise bad
            return float(number)
        return text

    def check(self, value: Any, *, playbook: str) -> Any:
        """Validate a Python value; return it normalised (ints accepted for floats, tuples for lists)."""
        if value is None:
            if self.optional:
                return None
            raise ParameterError(self._message(value, playbook))
        if not self.is_list:
            return self._check_one(value, value, playbook)
        if not isinstance(value, (list, tuple)):
            raise ParameterError(self._message(value, playbook))
        if self.length is not None:
            lo, hi = self.length
            if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
                raise ParameterError(self._message(value, playbook))
        return [self._check_one(v, value, playbook) for v in value]

    def _check_one(self, value: Any, whole: Any, playbook: str) -> Any:
        expected = _BASE_TYPES[self.element]
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if self.element == "float" and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if self.element == "float" and ok and not math.isfinite(value):
            ok = False
        if ok and self.choices is not None and value not in self.choices:
            ok = False
        if ok and self.pattern is not None and not re.fullmatch(self.pattern, value):
            ok = False
        if ok and self.interval is not None:
            lo, hi = self.interval
            ok = (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            raise ParameterError(self._message(whole, playbook))
        return value

    def _message(self, value: Any, playbook: str) -> str:
        where = f" of playbook {playbook!r}" if playbook else ""
        return f"The {self.name!r} parameter{where} must be {self.describe()}. Got {value!r} instead."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _parse_annotation(node: ast.expr, name: str) -> tuple[str, bool, tuple | None]:
    """Return (base type, optional, literal choices)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        if len(nones) == 1:
            other = sides[0] if sides[1] is nones[0] else sides[1]
            base, _, choices = _parse_annotation(other, name)
            return base, True, choices
    if isinstance(node, ast.Name) and node.id in _BASE_TYPES:
        return node.id, False, None
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "list"
            and isinstance(node.slice, ast.Name) and node.slice.id in ("int", "float", "str")):
        return f"list[{node.slice.id}]", False, None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        values = tuple(ast.literal_eval(e) for e in elts)
        types = {type(v).__name__ for v in values}
        if len(types) != 1 or next(iter(types)) not in _BASE_TYPES:
            raise MetadataError(f"Parameter {name!r}: Literal choices must all be int, float, str or bool.")
        return next(iter(types)), False, values
    raise MetadataError(
        f"Parameter {name!r} has annotation {ast.unparse(node)!r}; use int, float, str, bool, "
        "Literal[...], list[int], list[float], list[str] or one of those `| None`."
    )


def parse_parameters_cell(source: str, *, constraints: Mapping[str, Mapping[str, Any]] | None = None,
                          playbook: str = "") -> dict[str, Parameter]:
    """Parse ``name: type = default  # help`` lines into :class:`Parameter` objects.

    Raises
    ------
    MetadataError
        A statement is not a typed assignment of a literal, or a default breaks its own constraint.

    Examples
    --------
    >>> p = parse_parameters_cell("n: int = 3  # how many")["n"]
    >>> (p.type, p.default, p.help)
    ('int', 3, 'how many')
    """
    constraints = dict(constraints or {})
    where = f" in playbook {playbook!r}" if playbook else ""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise MetadataError(f"The parameters cell{where} is not valid Python: {exc}") from None
    comments = _comments(source)
    params: dict[str, Parameter] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
            raise MetadataError(
                f"Line {stmt.lineno} of the parameters cell{where} is not `name: type = default  # help`."
            )
        name = stmt.target.id
        base, optional, choices = _parse_annotation(stmt.annotation, name)
        try:
            default = ast.literal_eval(stmt.value)
        except ValueError:
            raise MetadataError(f"Parameter {name!r}{where}: the default must be a literal value.") from None
        extra = constraints.pop(name, {})
        interval, length = extra.get("interval"), extra.get("length")
        if length is not None and not base.startswith("list["):
            raise MetadataError(f"Parameter {name!r}{where}: a 'length' constraint needs a list type.")
        param = Parameter(
            name=name, type=base, default=default, help=comments.get(stmt.lineno, ""), optional=optional,
            choices=tuple(extra["choices"]) if "choices" in extra else choices,
            interval=tuple(interval) if interval is not None else None,
            pattern=extra.get("pattern"), length=tuple(length) if length is not None else None,
        )
        try:
            param.check(default, playbook=playbook)
        except ParameterError as exc:
            raise MetadataError(f"The default of {name!r}{where} breaks its own declaration: {exc}") from None
        params[name] = param
    if constraints:
        raise MetadataError(f"Constraints{where} name parameters that are not declared: {', '.join(sorted(constraints))}.")
    return params


def validate(values: Mapping[str, Any], declared: Mapping[str, Parameter], *, playbook: str) -> dict[str, Any]:
    """Check every value against its declaration; unknown names are errors.

    Returns the normalised values. Raises :class:`ParameterError` naming the parameter and
    listing the valid ones.
    """
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ParameterError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for playbook "
            f"{playbook!r}. Valid parameters: {', '.join(declared)}. See `sparkbooks show {playbook}`."
        )
    return {name: declared[name].check(value, playbook=playbook) for name, value in values.items()}
