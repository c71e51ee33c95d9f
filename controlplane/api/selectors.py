"""Label and field selectors, parsed, matched and printed as Kubernetes does.

`LabelSelector` follows k8s.io/apimachinery/pkg/labels: the `labelSelector` grammar (`=`, `==`,
`!=`, `in`, `notin`, `key`, `!key`, `>`, `<`; comma is AND), metav1.LabelSelector objects, and the
canonical string (requirements sorted by key, values sorted) that Scale.status.selector shows.
`FieldSelector` follows pkg/fields: `=`, `==`, `!=` terms joined by commas, with `\\`, `,` and `=`
backslash-escaped in values. Selectors are immutable values; parse errors raise `BadRequest`
carrying Kubernetes' own message (`unable to parse requirement: ...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api.errors import BadRequest
from controlplane.api.validation import (
    format_value,
    go_quote,
    is_qualified_name,
    is_valid_label_value,
)

IN, NOT_IN = "in", "notin"
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
EXISTS, DOES_NOT_EXIST = "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"
BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
OPERATORS = BINARY_OPERATORS + (EXISTS, DOES_NOT_EXIST)

_SELECTOR_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
_INT64 = re.compile(r"[+-]?[0-9]+")


class _ParseError(Exception):
    """A selector error whose text is Kubernetes' message; surfaced as `BadRequest`."""


def _parse_int64(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: a key, an operator and its (sorted) values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if not present or len(self.values) != 1:
            return False
        have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if self.operator == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


def _invalid(path: str, value: object, detail: str) -> str:
    shown = "[]string(nil)" if value == [] else format_value(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _operator_errors(operator: str, values: list[str]) -> list[str]:
    if operator in (IN, NOT_IN) and not values:
        return [_invalid("values", values,
                         "for 'in', 'notin' operators, values set can't be empty")]
    if operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        return [_invalid("values", values, "exact-match compatibility requires one single value")]
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        return [_invalid("values", values,
                         "values set must be empty for exists and does not exist")]
    if operator in (GREATER_THAN, LESS_THAN):
        errors = []
        if len(values) != 1:
            errors.append(_invalid("values", values,
                                   "for 'Gt', 'Lt' operators, exactly one value is required"))
        errors.extend(_invalid(f"values[{i}]", v,
                               "for 'Gt', 'Lt' operators, the value must be an integer")
                      for i, v in enumerate(values) if _parse_int64(v) is None)
        return errors
    if operator not in OPERATORS:
        supported = ", ".join(go_quote(op) for op in OPERATORS)
        return [f"operator: Unsupported value: {go_quote(operator)}: supported values: {supported}"]
    return []


def _new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    listed = [str(v) for v in values]
    errors = []
    if key_errors := is_qualified_name(key):
        errors.append(_invalid("key", key, "; ".join(key_errors)))
    errors.extend(_operator_errors(operator, listed))
    for i, value in enumerate(listed):
        if value_errors := is_valid_label_value(value):
            errors.append(_invalid(f"values[{i}][{key}]", value, "; ".join(value_errors)))
    if errors:
        raise _ParseError(_aggregate(errors))
    return Requirement(key, operator, tuple(sorted(listed)))


def requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """Build a validated requirement, as labels.NewRequirement does; raise `BadRequest`."""
    try:
        return _new_requirement(key, operator, values)
    except _ParseError as err:
        raise BadRequest(str(err)) from None


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; `nothing` marks the selector of a nil metav1.LabelSelector."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse a `labelSelector` query string; raise `BadRequest` as the apiserver answers."""
        try:
            found = _Parser(_Lexer(text).tokens()).parse()
        except _ParseError as err:
            raise BadRequest(str(err)) from None
        return cls(tuple(sorted(found, key=lambda r: r.key)))

    @classmethod
    def from_set(cls, labels: Mapping[str, str]) -> LabelSelector:
        """Select exactly these labels (a Service's or ReplicationController's selector)."""
        return cls(tuple(Requirement(k, EQUALS, (v,)) for k, v in sorted(labels.items())))

    @classmethod
    def from_object(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """Convert a metav1.LabelSelector dict; None selects nothing, {} everything."""
        if selector is None:
            return cls(nothing=True)
        match_labels: Mapping[str, Any] = selector.get("matchLabels") or {}
        expressions: list[Mapping[str, Any]] = selector.get("matchExpressions") or []
        found = [requirement(k, EQUALS, [v]) for k, v in sorted(match_labels.items())]
        for expr in expressions:
            operator = _SELECTOR_OPERATORS.get(str(expr.get("operator") or ""))
            if operator is None:
                raise BadRequest(f"{go_quote(str(expr.get('operator') or ''))} is not a valid "
                                 "label selector operator")
            found.append(requirement(str(expr.get("key") or ""), operator,
                                     expr.get("values") or []))
        return cls(tuple(sorted(found, key=lambda r: r.key)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.nothing and all(r.matches(labels) for r in self.requirements)

    def is_empty(self) -> bool:
        """Whether the selector places no restriction (it selects everything)."""
        return not self.nothing and not self.requirements

    def to_query(self) -> str:
        """The `labelSelector` query form, e.g. `app=x` for `{"matchLabels": {"app": "x"}}`."""
        return str(self)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_END, _IDENT, _ERROR = "end", "identifier", "error"
_OPEN, _CLOSE, _COMMA, _NOT = "(", ")", ",", "!"
_KEYWORDS = frozenset({IN, NOT_IN})
_TOKENS = {t: t for t in (")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "(")}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


class _Lexer:
    """labels.Lexer, byte for byte: a NUL reads as the end of input, as Go's `read` returns 0."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self) -> str:
        if self.pos >= len(self.text):
            return "\x00"
        self.pos += 1
        return self.text[self.pos - 1]

    def tokens(self) -> list[tuple[str, str]]:
        found = []
        while True:
            ch = self.read()
            while ch in _WHITESPACE:
                ch = self.read()
            if ch == "\x00":
                found.append((_END, ""))
                return found
            self.pos -= 1
            found.append(self.special() if ch in _SPECIAL else self.identifier())

    def identifier(self) -> tuple[str, str]:
        chars = []
        while (ch := self.read()) != "\x00":
            if ch in _SPECIAL or ch in _WHITESPACE:
                self.pos -= 1
                break
            chars.append(ch)
        literal = "".join(chars)
        return _TOKENS.get(literal, _IDENT), literal

    def special(self) -> tuple[str, str]:
        buffer, last = "", ""
        while (ch := self.read()) != "\x00":
            if ch not in _SPECIAL:
                self.pos -= 1
                break
            buffer += ch
            if buffer in _TOKENS:
                last = buffer
            elif last:
                self.pos -= 1
                break
        if not last:
            return _ERROR, f"error expected: keyword found '{buffer}'"
        return _TOKENS[last], last


class _Parser:
    """labels.Parser: `in` and `notin` read as identifiers wherever a value may stand."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self.pos = 0

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        token, literal = self.items[self.pos]
        return (_IDENT if values and token in _KEYWORDS else token), literal

    def consume(self, values: bool = True) -> tuple[str, str]:
        item = self.lookahead(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        found: list[Requirement] = []
        while True:
            token, literal = self.lookahead()
            if token == _END:
                return found
            if token not in (_IDENT, _NOT):
                raise _ParseError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                found.append(self.requirement())
            except _ParseError as err:
                raise _ParseError(f"unable to parse requirement: {err}") from None
            token, literal = self.consume()
            if token == _END:
                return found
            if token != _COMMA:
                raise _ParseError(f"found '{literal}', expected: ',' or 'end of string'")
            token, literal = self.lookahead()
            if token not in (_IDENT, _NOT):
                raise _ParseError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        key, operator = self.key_and_inferred_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return _new_requirement(key, operator, [])
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return _new_requirement(key, operator, sorted(values))

    def key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        token, literal = self.consume()
        if token == _NOT:
            operator = DOES_NOT_EXIST
            token, literal = self.consume()
        if token != _IDENT:
            raise _ParseError(f"found '{literal}', expected: identifier")
        if errors := is_qualified_name(literal):
            raise _ParseError(_invalid("<nil>", literal, "; ".join(errors)))
        if self.lookahead()[0] in (_END, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def operator(self) -> str:
        token, literal = self.consume(values=False)
        symbols = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
                   ">": GREATER_THAN, "<": LESS_THAN}
        if token not in symbols:
            raise _ParseError(f"found '{literal}', expected: {', '.join(BINARY_OPERATORS)}")
        return symbols[token]

    def value_set(self) -> set[str]:
        token, literal = self.consume()
        if token != _OPEN:
            raise _ParseError(f"found '{literal}' expected: '('")
        token, literal = self.lookahead()
        if token == _CLOSE:
            self.consume()
            return {""}
        if token not in (_IDENT, _COMMA):
            raise _ParseError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.identifiers()
        if self.consume()[0] != _CLOSE:
            raise _ParseError(f"found '{literal}', expected: ')'")
        return values

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            token, literal = self.consume()
            if token == _IDENT:
                values.add(literal)
                after, after_literal = self.lookahead()
                if after == _CLOSE:
                    return values
                if after != _COMMA:
                    raise _ParseError(f"found '{after_literal}', expected: ',' or ')'")
            elif token == _COMMA:
                if not values:
                    values.add("")
                after = self.lookahead()[0]
                if after == _CLOSE:
                    values.add("")
                    return values
                if after == _COMMA:
                    self.consume()
                    values.add("")
            else:
                raise _ParseError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead()[0] in (_END, _COMMA):
            return {""}
        token, literal = self.consume()
        if token != _IDENT:
            raise _ParseError(f"found '{literal}', expected: identifier")
        return {literal}


def escape_field_value(value: str) -> str:
    """Escape `\\`, `,` and `=` in a field selector value, as fields.EscapeValue does."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(raw: str) -> str:
    out, escaped = [], False
    for ch in raw:
        if escaped:
            if ch not in "\\,=":
                raise _ParseError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise _ParseError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise _ParseError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_field_terms(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    return [*terms, text[start:]] if text else []


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in (NOT_EQUALS, DOUBLE_EQUALS, EQUALS):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True)
class FieldSelector:
    """An AND of `field=value` / `field!=value` terms; `==` is kept as `=`, as Kubernetes does."""

    terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        """Parse a `fieldSelector` query string; raise `BadRequest` as the apiserver answers."""
        terms = []
        try:
            for part in sorted(_split_field_terms(text)):
                if not part:
                    continue
                split = _split_field_term(part)
                if split is None:
                    raise _ParseError(f"invalid selector: '{text}'; can't understand '{part}'")
                field, op, raw = split
                terms.append((field, NOT_EQUALS if op == NOT_EQUALS else EQUALS,
                              _unescape_field_value(raw)))
        except _ParseError as err:
            raise BadRequest(str(err)) from None
        return cls(tuple(sorted(terms, key=_field_term_text)))

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        """The terms as (field, operator, value), the operator `=` or `!=`."""
        return list(self.terms)

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(f, "") == v) == (op == EQUALS) for f, op, v in self.terms)

    def exact(self, field: str) -> str | None:
        """The value an `=` term requires of `field`, if any (to narrow a list to one name)."""
        return next((v for f, op, v in self.terms if f == field and op == EQUALS), None)

    def fields(self) -> set[str]:
        return {f for f, _, _ in self.terms}

    def is_empty(self) -> bool:
        return not self.terms

    def __str__(self) -> str:
        return ",".join(_field_term_text(t) for t in self.terms)


def _field_term_text(term: tuple[str, str, str]) -> str:
    field, op, value = term
    return f"{field}{op}{escape_field_value(value)}"
