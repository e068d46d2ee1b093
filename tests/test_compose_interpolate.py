"""Compose interpolation and .env parsing: every operator against set, empty and unset variables, exact errors, and
hostile input that must fail (or pass) quickly and without recursion."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from gitops.manifests.compose.interpolate import DotenvError, InterpolationError, interpolate, parse_dotenv

VARS = {"SET": "value", "EMPTY": "", "OTHER": "other"}


def unset_message(name: str) -> str:
    return (
        f"variable {name} is not set: set it in the .env file beside the compose file or in a declared env file, "
        f"or give a default with ${{{name}:-value}}"
    )


def fails(text: str, variables: dict[str, str] | None = None) -> InterpolationError:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, VARS if variables is None else variables)
    return info.value


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.suppress(InterpolationError):
        call()
    return time.perf_counter() - start


# -- substitution -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("${SET}", "value"),
        ("$SET", "value"),
        ("${EMPTY}", ""),
        ("$EMPTY", ""),
        ("image:${SET}-${OTHER}", "image:value-other"),
        ("$SET.$OTHER/x", "value.other/x"),
        ("$SETx", None),  # the name is greedy: SETx is unset
        ("${SET}x", "valuex"),
        ("a}b{c", "a}b{c"),
    ],
)
def test_direct_substitution(text: str, expected: str | None) -> None:
    if expected is None:
        assert fails(text).message == unset_message("SETx")
    else:
        assert interpolate(text, VARS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ':-' replaces unset and empty, '-' only unset
        ("${SET:-d}", "value"),
        ("${EMPTY:-d}", "d"),
        ("${UNSET:-d}", "d"),
        ("${SET-d}", "value"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${UNSET:-}", ""),
        ("${UNSET-}", ""),
        # ':+' needs set and non-empty, '+' only set
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${SET+alt}", "alt"),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        # ':?' and '?' pass the value through when satisfied
        ("${SET:?msg}", "value"),
        ("${SET?msg}", "value"),
        ("${EMPTY?msg}", ""),
        # defaults may hold any text, including operators' characters
        ("${UNSET:-a b:c-d?e+f}", "a b:c-d?e+f"),
        ("${UNSET-{x}}", "{x}"),
    ],
)
def test_operators(text: str, expected: str) -> None:
    assert interpolate(text, VARS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-$SET}", "value"),
        ("${UNSET:-${EMPTY:-${OTHER}}}", "other"),
        ("${UNSET:-x-${SET}-y}", "x-value-y"),
        ("${SET:+[${OTHER}]}", "[other]"),
        ("${UNSET:-${ALSO_UNSET:-deep}}!", "deep!"),
        # an operand compose does not evaluate may name unset variables
        ("${SET:-${UNSET}}", "value"),
        ("${UNSET:+${ALSO_UNSET}}", ""),
        ("${SET?${UNSET}}", "value"),
        ("${SET:-${UNSET:?never raised}}", "value"),
    ],
)
def test_nested(text: str, expected: str) -> None:
    assert interpolate(text, VARS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("$$$SET", "$value"),
        ("$$$$", "$$"),
        ("cost: $$5", "cost: $5"),
        ("${UNSET:-$$}", "$"),
        ("${UNSET:-$${X}}", "${X}"),
        # a '$' that cannot start an expression stays as written
        ("$", "$"),
        ("a $ b", "a $ b"),
        ("$-", "$-"),
        ("$1", "$1"),
        ("$.x", "$.x"),
        ("x$", "x$"),
        ("${UNSET:-$}", "$"),
    ],
)
def test_dollars(text: str, expected: str) -> None:
    assert interpolate(text, VARS) == expected


def test_variables_are_any_mapping_and_are_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONLY_IN_ENVIRON", "x")
    assert fails("${ONLY_IN_ENVIRON}", {}).message == unset_message("ONLY_IN_ENVIRON")
    from types import MappingProxyType

    assert interpolate("$A", MappingProxyType({"A": "1"})) == "1"


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "offset"),
    [
        ("${UNSET}", "UNSET", 0),
        ("$UNSET", "UNSET", 0),
        ("abc $UNSET", "UNSET", 4),
        ("${SET}${UNSET}", "UNSET", 6),
        ("${UNSET:-${NOPE}}", "NOPE", 9),
        ("${EMPTY:-x$NOPE}", "NOPE", 10),
        ("${SET:+${NOPE}}", "NOPE", 7),
    ],
)
def test_unset_variable(text: str, name: str, offset: int) -> None:
    err = fails(text)
    assert (err.message, err.offset) == (unset_message(name), offset)
    assert str(err) == err.message
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("${UNSET:?set UNSET in .env}", "variable UNSET is required: set UNSET in .env", 0),
        ("${EMPTY:?must not be empty}", "variable EMPTY is required: must not be empty", 0),
        ("${UNSET?gone}", "variable UNSET is required: gone", 0),
        ("x ${UNSET:?}", "variable UNSET is required", 2),
        ("${UNSET?}", "variable UNSET is required", 0),
        ("${UNSET?$SET and ${OTHER}}", "variable UNSET is required: value and other", 0),
        ("${UNSET:-${NEEDED?please}}", "variable NEEDED is required: please", 9),
    ],
)
def test_required(text: str, message: str, offset: int) -> None:
    err = fails(text)
    assert (err.message, err.offset) == (message, offset)


def test_required_with_empty_value_and_no_colon_passes() -> None:
    assert interpolate("[${EMPTY?msg}]", VARS) == "[]"


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("${", "unterminated '${': add the closing '}'", 0),
        ("x ${SET", "unterminated '${': add the closing '}'", 2),
        ("${SET:", "unterminated '${': add the closing '}'", 0),
        ("${SET:-abc", "unterminated '${': add the closing '}'", 0),
        ("${UNSET:-${SET}", "unterminated '${': add the closing '}'", 0),
        ("${UNSET:-${SET", "unterminated '${': add the closing '}'", 9),
        ("${}", "empty variable name in '${}': write ${NAME}, or $$ for a literal '$'", 0),
        ("ab${}", "empty variable name in '${}': write ${NAME}, or $$ for a literal '$'", 2),
        (
            "${1A}",
            "invalid variable name in '${1A}': a name is a letter or '_' followed by letters, digits or '_'; "
            "write $$ for a literal '$'",
            0,
        ),
        (
            "${ A}",
            "invalid variable name in '${ A}': a name is a letter or '_' followed by letters, digits or '_'; "
            "write $$ for a literal '$'",
            0,
        ),
        (
            "${A B}",
            "invalid interpolation '${A B}': after the name A compose expects '}' or one of :- - :? ? :+ +",
            0,
        ),
        (
            "${VAR/foo/bar}",
            "invalid interpolation '${VAR/foo/bar}': after the name VAR compose expects '}' or one of :- - :? ? :+ +",
            0,
        ),
        (
            "${SET:=x}",
            "invalid interpolation '${SET:=x}': after the name SET compose expects '}' or one of :- - :? ? :+ +",
            0,
        ),
        (
            "${UNSET:-${A.B}}",
            "invalid interpolation '${A.B}': after the name A compose expects '}' or one of :- - :? ? :+ +",
            9,
        ),
    ],
)
def test_bad_syntax(text: str, message: str, offset: int) -> None:
    err = fails(text)
    assert (err.message, err.offset) == (message, offset)


def test_syntax_is_checked_in_operands_that_are_not_used() -> None:
    err = fails("${SET:-${}}")
    assert (err.offset, err.message.startswith("empty variable name")) == (7, True)


# -- bounds -------------------------------------------------------------------------------------------------------


def test_nesting_limit() -> None:
    ok = "${UNSET:-" * 32 + "x" + "}" * 32
    assert interpolate(ok, VARS) == "x"
    err = fails("${UNSET:-" * 33 + "x" + "}" * 33)
    assert (err.message, err.offset) == ("interpolation nested deeper than 32 levels", 32 * 9)


def test_hostile_nesting_fails_fast() -> None:
    text = "${A:-" * 100_000
    assert timed(lambda: interpolate(text, {})) < 3  # linear: ~0.5 s busy; quadratic: minutes
    err = fails(text, {})
    assert (err.message, err.offset) == ("interpolation nested deeper than 32 levels", 32 * 5)


def test_result_size_limit() -> None:
    big = {"BIG": "x" * 600_000}
    assert len(interpolate("$BIG", big)) == 600_000
    err = fails("$BIG$BIG", big)
    assert (err.message, err.offset) == ("value longer than 1 MiB after interpolation", 0)
    err = fails("${UNSET:-$BIG$BIG}", big)
    assert (err.message, err.offset) == ("value longer than 1 MiB after interpolation", 0)
    err = fails("x" * (1 << 20 | 1), {})
    assert err.message == "value longer than 1 MiB after interpolation"
    assert interpolate("x" * (1 << 20), {}) == "x" * (1 << 20)


@pytest.mark.parametrize(
    "text",
    [
        "$$" * (1 << 19),
        "$" * (1 << 20),
        "}" * (1 << 20),
        "$ " * (1 << 19),
        "$A" * (1 << 19),
        "${A}" * (1 << 18),
        "${A:-}" * (1 << 17),
        "${U:-${A}}" * (1 << 16),
        "${A:-" * 32 + "$$" * (1 << 18) + "}" * 32,
        "${A:-" * 32 + "}" * (1 << 20),
        "${U" * (1 << 18),
        "$U" * (1 << 19),
        "${" + "A" * (1 << 20),
    ],
)
def test_hostile_input_is_fast(text: str) -> None:
    assert timed(lambda: interpolate(text, {"A": ""})) < 3  # linear: ~0.5 s busy; quadratic: minutes


def test_huge_values_hit_the_limit_fast() -> None:
    variables = {"A": "x" * 100_000}
    assert timed(lambda: interpolate("$A" * 100_000, variables)) < 3  # linear: ~0.5 s busy; quadratic: minutes
    assert fails("$A" * 100_000, variables).message == "value longer than 1 MiB after interpolation"


# -- .env ---------------------------------------------------------------------------------------------------------


def dotenv_fails(text: str, variables: dict[str, str] | None = None) -> DotenvError:
    with pytest.raises(DotenvError) as info:
        parse_dotenv(text, variables)
    return info.value


def test_dotenv_basics() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   # an indented comment\n"
        "A=1\n"
        "export B=2\n"
        "  C  =  spaced out  \n"
        "D=\n"
        "E.f-g_h=dotted\n"
        "_U=underscore\n"
        "F=a=b=c\n"
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "2",
        "C": "spaced out",
        "D": "",
        "E.f-g_h": "dotted",
        "_U": "underscore",
        "F": "a=b=c",
    }


def test_dotenv_bare_key_is_skipped() -> None:
    assert parse_dotenv("HOME\nA=1\nexport PATH\n", {"HOME": "/root"}) == {"A": "1"}


def test_dotenv_inline_comments() -> None:
    text = "A=1 # one\nB=x#y\nC= # only a comment\nD=a\t# tab then hash\nE=#start\nF=a #b #c\n"
    assert parse_dotenv(text) == {"A": "1", "B": "x#y", "C": "", "D": "a", "E": "#start", "F": "a"}


def test_dotenv_single_quotes_are_literal() -> None:
    text = "A=set\nB='$A ${A} \\n \\\\ # not a comment'\nC='  padded  ' # comment\nD=''\n"
    assert parse_dotenv(text) == {"A": "set", "B": "$A ${A} \\n \\\\ # not a comment", "C": "  padded  ", "D": ""}


def test_dotenv_double_quotes() -> None:
    text = (
        'A="tab\\there"\n'
        'B="line\\nbreak\\r"\n'
        'C="quote \\" and backslash \\\\"\n'
        'D="  # not a comment  "   # a comment\n'
        'E="unknown \\q escape"\n'
        'F=""\n'
    )
    assert parse_dotenv(text) == {
        "A": "tab\there",
        "B": "line\nbreak\r",
        "C": 'quote " and backslash \\',
        "D": "  # not a comment  ",
        "E": "unknown \\q escape",
        "F": "",
    }


def test_dotenv_multiline_double_quoted() -> None:
    text = "A=\"first\nsecond\n  third\"\nB=after\nC='one\ntwo'\nD=${A:?}\n"
    result = parse_dotenv(text)
    assert result == {"A": "first\nsecond\n  third", "B": "after", "C": "one\ntwo", "D": "first\nsecond\n  third"}
    err = dotenv_fails('A="x\ny"\nB=ok\n1C=bad\n')
    assert err.line == 4


def test_dotenv_interpolation() -> None:
    text = 'A=one\nB=${A}-two\nC="$B three"\nD=${OUTER}\nE=${A:-x}${MISSING:-dflt}\nA=again\nF=$A\nG=$$A\n'
    assert parse_dotenv(text, {"OUTER": "outer", "A": "ignored"}) == {
        "A": "again",
        "B": "one-two",
        "C": "one-two three",
        "D": "outer",
        "E": "onedflt",
        "F": "again",
        "G": "$A",
    }


def test_dotenv_own_keys_win_over_variables() -> None:
    assert parse_dotenv("X=$V\nV=mine\nY=$V\n", {"V": "given"}) == {"X": "given", "V": "mine", "Y": "mine"}


def test_dotenv_does_not_change_variables() -> None:
    variables = {"V": "given"}
    parse_dotenv("V=mine\n", variables)
    assert variables == {"V": "given"}


def test_dotenv_line_endings_and_bom() -> None:
    assert parse_dotenv('\ufeffA=1\r\nB="x\r\ny"\r\n') == {"A": "1", "B": "x\ny"}
    assert parse_dotenv("A=1") == {"A": "1"}
    assert parse_dotenv("") == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1A=x", "1A"),
        ("=x", ""),
        ("A B=x", "A B"),
        ("A-B C", "A-B C"),
        ("ü=x", "ü"),
        ("export =x", ""),
    ],
)
def test_dotenv_bad_key(text: str, key: str) -> None:
    err = dotenv_fails("OK=1\n# fine\n" + text + "\n")
    assert err.line == 3
    assert err.message == (
        f"invalid key {key!r}: a key is a letter or '_' followed by letters, digits, '_', '.' or '-', "
        "then '=' and the value"
    )
    assert str(err) == f"line 3: {err.message}"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('A=1\nB="open\nC=2\n', 2, 'unterminated double-quoted value: add the closing "'),
        ('A="escaped \\"\n', 1, 'unterminated double-quoted value: add the closing "'),
        ("A=1\n\nB='open\nC=2", 3, "unterminated single-quoted value: add the closing '"),
        ('A="x" trailing\n', 1, "unexpected text after the closing \": 'trailing'"),
        ("A='x'y\n", 1, "unexpected text after the closing ': 'y'"),
    ],
)
def test_dotenv_bad_values(text: str, line: int, message: str) -> None:
    err = dotenv_fails(text)
    assert (err.line, err.message) == (line, message)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=1\nB=${NOPE}\n", 2, unset_message("NOPE")),
        ('A=1\nB="x\ny"\nC="$NOPE"\n', 4, unset_message("NOPE")),
        ('A="multi\nline ${NOPE}"\n', 1, unset_message("NOPE")),
        ("A=${X:?give X}\n", 1, "variable X is required: give X"),
        ("A=${\n", 1, "unterminated '${': add the closing '}'"),
        ("B=${A}\nA=late\n", 1, unset_message("A")),
    ],
)
def test_dotenv_interpolation_errors(text: str, line: int, message: str) -> None:
    err = dotenv_fails(text)
    assert (err.line, err.message) == (line, message)
    assert isinstance(err, ValueError)


def test_dotenv_hostile_is_fast() -> None:
    big = "A=" + "$$" * (1 << 18) + "\n" + "# c\n" * 100_000 + 'B="' + "\\n" * (1 << 18) + '"\n'
    start = time.perf_counter()
    result = parse_dotenv(big)
    assert time.perf_counter() - start < 1
    assert (len(result["A"]), len(result["B"])) == (1 << 18, 1 << 18)
    start = time.perf_counter()
    with pytest.raises(DotenvError):
        parse_dotenv('A="' + "x\\" * (1 << 19))
    assert time.perf_counter() - start < 1
