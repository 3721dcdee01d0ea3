"""Playbook parameters: parse the ``parameters`` cell, coerce CLI text, validate values.

A parameters cell holds one typed line per parameter::

    n_rows: int = 1_000_000  # rows of generated sales data

Constraints beyond the type (an interval or a set of choices) are declared once, in the
notebook's ``playbook.constraints`` metadata, and checked with one message template:
"The 'n_rows' parameter of playbook 'start-here' must be an int in [1000, inf). Got 0 instead."
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import MetadataError, ParameterError

__all__ = ["Parameter", "parse_parameters_cell", "validate"]

_BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
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

    @property
    def annotation(self) -> str:
        return f"{self.type} | None" if self.optional else self.type

    def describe(self) -> str:
        """The constraint in words: ``an int in [1000, inf)``, ``one of 'a', 'b'``."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        else:
            article = "an" if self.type == "int" else "a"
            text = f"{article} {self.type}"
            if self.interval is not None:
                lo, hi = self.interval
                left = "(-inf" if lo is None else f"[{_num(lo)}"
                right = "inf)" if hi is None else f"{_num(hi)}]"
                text += f" in {left}, {right}"
        if self.pattern is not None:
            text += f" matching {self.pattern!r}"
        return text + (" or None" if self.optional else "")

    def parse(self, text: str, *, playbook: str = "") -> Any:
        """Turn command-line text into a value of the declared type (not yet range-checked)."""
        raw = text.strip()
        if self.optional and raw.lower() in _NONE:
            return None
        try:
            if self.type == "bool":
                low = raw.lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError(raw)
            if self.type == "int":
                try:
                    return int(raw.replace("_", ""))
                except ValueError:
                    as_float = float(raw)  # accept 1e6 when it is a whole number
                    if as_float.is_integer():
                        return int(as_float)
                    raise
            if self.type == "float":
                return float(raw.replace("_", ""))
            return text
        except ValueError:
            raise ParameterError(self._message(text, playbook)) from None

    def check(self, value: Any, *, playbook: str) -> Any:
        """Validate a Python value; return it normalised (ints accepted for floats)."""
        if value is None:
            if self.optional:
                return None
            raise ParameterError(self._message(value, playbook))
        expected = _BASE_TYPES[self.type]
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if self.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if self.type == "float" and ok and not math.isfinite(value):
            ok = False
        if ok and self.choices is not None and value not in self.choices:
            ok = False
        if ok and self.pattern is not None and not re.fullmatch(self.pattern, value):
            ok = False
        if ok and self.interval is not None:
            lo, hi = self.interval
            ok = (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            raise ParameterError(self._message(value, playbook))
        return value

    def _message(self, value: Any, playbook: str) -> str:
        where = f" of playbook {playbook!r}" if playbook else ""
        return f"The {self.name!r} parameter{where} must be {self.describe()}. Got {value!r} instead."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


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
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        values = tuple(ast.literal_eval(e) for e in elts)
        types = {type(v).__name__ for v in values}
        if len(types) != 1 or next(iter(types)) not in _BASE_TYPES:
            raise MetadataError(f"Parameter {name!r}: Literal choices must all be int, float, str or bool.")
        return next(iter(types)), False, values
    raise MetadataError(
        f"Parameter {name!r} has annotation {ast.unparse(node)!r}; use int, float, str, bool, "
        "Literal[...] or one of those `| None`."
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
        interval = extra.get("interval")
        param = Parameter(
            name=name, type=base, default=default, help=comments.get(stmt.lineno, ""), optional=optional,
            choices=tuple(extra["choices"]) if "choices" in extra else choices,
            interval=tuple(interval) if interval is not None else None,
            pattern=extra.get("pattern"),
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
