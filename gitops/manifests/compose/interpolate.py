"""Compose variable interpolation and ``.env`` parsing, as the Compose Specification and compose-go define them.

Pure on purpose: what a compose file means must depend only on the repository's files and the variables
the caller passes, never on the environment of the process that happens to read it. The input comes
from a git repository, so it is untrusted: every loop is bounded, nothing recurses, and the result has
a size limit.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_RESULT = 1 << 20  # characters: a value bigger than this is an attack or a mistake, not configuration
MAX_DEPTH = 32  # nested ${VAR:-...} levels: real files use two or three

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One token: a run of text that needs no decision (plain characters, '$$', a '$' that cannot start an
# expression), $NAME, ${NAME} or ${NAME<op>, a '}' that closes an expression, or a '$' starting a bad one.
# Possessive quantifiers keep matching linear. Inside an expression '}' is not text.
_TOKENS = (
    r"|\$(?P<name>[A-Za-z_][A-Za-z0-9_]*+)"
    r"|\$\{(?P<brace>[A-Za-z_][A-Za-z0-9_]*+)(?P<op>\}|:?[-?+])"
    r"|(?P<close>\})"
    r"|(?P<bad>\$)"
)
_TOP = re.compile(r"(?P<text>(?:[^$]++|\$\$|\$(?![{A-Za-z_$]))++)" + _TOKENS)
_NESTED = re.compile(r"(?P<text>(?:[^$}]++|\$\$|\$(?![{A-Za-z_$]))++)" + _TOKENS)

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DOUBLE_QUOTED = re.compile(r'(?:[^"\\]++|\\.)*+"', re.DOTALL)  # the rest of a "..." value, closing quote included
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_INLINE_COMMENT = re.compile(r"\s#")


class InterpolationError(ValueError):
    """A compose value cannot be interpolated; ``offset`` points the author at the expression to fix."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class DotenvError(ValueError):
    """A ``.env`` file cannot be read the way compose would; ``line`` (1-based) is where to look."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.message = message
        self.line = line


@dataclass(slots=True)
class _Open:
    """A ``${NAME<op>`` whose operand is still being read."""

    start: int
    name: str
    op: str
    value: str | None
    live: bool  # the enclosing text is evaluated (not an unused default)
    used: bool  # the operand is the one compose would evaluate
    parts: list[str] = field(default_factory=list)


def _snippet(text: str, start: int) -> str:
    close = text.find("}", start, start + 64)
    return text[start : close + 1] if close >= 0 else text[start : start + 64]


def _unset(name: str, offset: int) -> InterpolationError:
    return InterpolationError(
        f"variable {name} is not set: set it in the .env file beside the compose file or in a declared env file, "
        f"or give a default with ${{{name}:-value}}",
        offset,
    )


def _unterminated(offset: int) -> InterpolationError:
    return InterpolationError("unterminated '${': add the closing '}'", offset)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Substitute compose variables in one value; an unset variable is an error rather than compose's warning,
    because an empty image tag or path deployed silently is worse than a refused commit."""
    out: list[str] = []
    parts, active = out, True  # where the current text goes, and whether compose would evaluate it
    stack: list[_Open] = []
    size, pos, end, scan = 0, 0, len(text), _TOP.match
    while pos < end:
        token = scan(text, pos)
        assert token is not None  # every position starts some token
        start, pos, kind = pos, token.end(), token.lastgroup
        piece: str | None = None
        if kind == "text":
            piece = token.group().replace("$$", "$") if active else None
        elif kind == "name" or token.group("op") == "}":
            if active:
                name = token.group(kind if kind == "name" else "brace")
                piece = variables.get(name)
                if piece is None:
                    raise _unset(name, start)
        elif kind == "op":
            if len(stack) >= MAX_DEPTH:
                raise InterpolationError(f"interpolation nested deeper than {MAX_DEPTH} levels", start)
            name, op = token.group("brace"), token.group("op")
            value = variables.get(name) if active else None
            if op[-1] == "+":
                used = value is not None and (value != "" or op == "+")
            else:
                used = value is None or (op[0] == ":" and value == "")
            stack.append(_Open(start, name, op, value, active, used))
            parts, active, scan = stack[-1].parts, active and used, _NESTED.match
        elif kind == "close":
            frame = stack.pop()
            parts, active = (stack[-1].parts, stack[-1].live and stack[-1].used) if stack else (out, True)
            scan = _NESTED.match if stack else _TOP.match
            if frame.live:
                if frame.op[-1] == "?" and frame.used:
                    msg = "".join(frame.parts)
                    tail = f": {msg}" if msg else ""
                    raise InterpolationError(f"variable {frame.name} is required{tail}", frame.start)
                if frame.op[-1] == "+" or frame.used:
                    parts.extend(frame.parts)  # already counted; empty when '+' is not used
                else:
                    piece = frame.value or ""
        else:
            raise _bad_expression(text, start)
        if piece:
            size += len(piece)
            if size > MAX_RESULT:
                raise InterpolationError("value longer than 1 MiB after interpolation", 0)
            parts.append(piece)
    if stack:
        raise _unterminated(stack[-1].start)
    return "".join(out)


def _bad_expression(text: str, start: int) -> InterpolationError:
    """Why the '${' at ``start`` is not an expression compose accepts."""
    name = _NAME.match(text, start + 2)
    after = name.end() if name else start + 2
    if after >= len(text) or (name and text[after] == ":" and after + 1 >= len(text)):
        return _unterminated(start)
    if name is None and text[after] == "}":
        return InterpolationError("empty variable name in '${}': write ${NAME}, or $$ for a literal '$'", start)
    if name is None:
        return InterpolationError(
            f"invalid variable name in '{_snippet(text, start)}': a name is a letter or '_' followed by letters, "
            "digits or '_'; write $$ for a literal '$'",
            start,
        )
    return InterpolationError(
        f"invalid interpolation '{_snippet(text, start)}': after the name {name.group()} compose expects '}}' "
        "or one of :- - :? ? :+ +",
        start,
    )


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPES.get(char, match.group())  # compose keeps an unknown escape as written


def parse_dotenv(text: str, variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read a ``.env`` file as compose would, so that a value means the same under ``docker compose`` and gitops.

    A bare ``KEY`` line, which compose fills from the process environment, is skipped: gitops never reads it.
    """
    own: dict[str, str] = {}
    scope: ChainMap[str, str] = ChainMap(own, dict(variables or {}))
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    pos, line, size = 0, 1, len(text)
    while pos < size:
        eol = text.find("\n", pos)
        eol = size if eol < 0 else eol
        body = text[pos:eol].strip()
        if body and not body.startswith("#"):
            if body.startswith(("export ", "export\t")):
                body = body[7:].lstrip()
            key, equals, _ = body.partition("=")
            key = key.strip()
            if not _KEY.fullmatch(key):
                shown = key if len(key) <= 64 else key[:64] + "..."
                raise DotenvError(
                    f"invalid key {shown!r}: a key is a letter or '_' followed by letters, digits, "
                    "'_', '.' or '-', then '=' and the value",
                    line,
                )
            if equals:
                start = text.index("=", pos) + 1
                value, eol = _value(text, start, eol, line, scope)
                own[key] = value
        line += text.count("\n", pos, eol) + 1
        pos = eol + 1
    return own


def _value(text: str, start: int, eol: int, line: int, scope: Mapping[str, str]) -> tuple[str, int]:
    """One value starting at ``start``; returns it and the end of its last line, which differs from ``eol``
    only for a quoted value that spans lines."""
    first = start
    while first < eol and text[first] in " \t":
        first += 1
    quote = text[first] if first < eol and text[first] in "'\"" else ""
    if quote == "'":
        close = text.find("'", first + 1)
        if close < 0:
            raise DotenvError("unterminated single-quoted value: add the closing '", line)
        raw, after = text[first + 1 : close], close + 1
    elif quote == '"':
        match = _DOUBLE_QUOTED.match(text, first + 1)
        if match is None:
            raise DotenvError('unterminated double-quoted value: add the closing "', line)
        raw, after = _ESCAPE.sub(_unescape, text[first + 1 : match.end() - 1]), match.end()
    else:
        raw = text[start:eol]
        comment = _INLINE_COMMENT.search(raw)
        raw = (raw[: comment.start()] if comment else raw).strip()
    if quote:
        eol = text.find("\n", after)
        eol = len(text) if eol < 0 else eol
        rest = text[after:eol].strip()
        if rest and not rest.startswith("#"):
            raise DotenvError(f"unexpected text after the closing {quote}: {rest[:64]!r}", line)
        if quote == "'":
            return raw, eol
    try:
        return interpolate(raw, scope), eol
    except InterpolationError as err:
        raise DotenvError(err.message, line) from None
