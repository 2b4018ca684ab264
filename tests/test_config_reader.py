"""config/reader.py on its own: how a raw value becomes a typed one, and the one sentence a bad
value gets. A two-line schema stands in for Pulumi.yaml, so each rule is seen alone and each test
runs in microseconds (mutation testing, issue 30: docs/testing.md)."""

from __future__ import annotations

import enum

import pytest

from config.reader import Reader, show
from config.schema import KeySpec, ProjectSchema


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


def key(name: str, type_: str = "string", default: object = None, has_default: bool = False) -> KeySpec:
    return KeySpec(name=name, type=type_, description=f"the {name} key of the test project", default=default, has_default=has_default)


SCHEMA = ProjectSchema(project="p", keys={
    "free": key("free"),  # no default
    "named": key("named", default="abc", has_default=True),
    "count": key("count", "integer", default=3, has_default=True),
    "flag": key("flag", "boolean", default=True, has_default=True),
    "list": key("list", "array", default=["a"], has_default=True),
    "colour": key("colour"),
})


def reader(**values: object) -> Reader:
    return Reader({f"p:{k}": v for k, v in values.items()} | {"aws:region": "eu-west-1", "other:x": 1}, SCHEMA)


def test_values_of_the_project_and_of_other_namespaces_are_kept_apart() -> None:
    r = reader(free="x")
    assert r.values == {"free": "x"}
    assert r.other == {"aws:region": "eu-west-1", "other:x": 1}
    assert r.qualified("free") == "p:free"
    assert (r.problems, r.failed, r.read) == ([], set(), set())
    # a key that merely starts like the project name is another namespace's
    assert Reader({"pp:free": "x"}, SCHEMA).values == {}


def test_a_key_read_but_not_declared_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match=r"^\"config key 'nope' is read but not declared in Pulumi.yaml\"$"):
        reader().string("nope")


def test_read_keys_are_recorded_and_defaults_apply() -> None:
    r = reader(count=7)
    assert r.string("named") == "abc" and r.integer("count") == 7 and r.boolean("flag") is True and r.strings("list") == ("a",)
    assert r.read == {"named", "count", "flag", "list"}
    assert r.problems == []


def test_one_error_per_key_in_one_sentence() -> None:
    r = reader()
    r.fail("count", "x", "must be good")
    r.fail("count", "y", "must be better")
    r.check(False, "flag", 5, "must be true")
    r.check(True, "named", 5, "never said")
    assert r.problems == ["p:count = 'x' is invalid: must be good", "p:flag = 5 is invalid: must be true"]
    assert r.failed == {"count", "flag"}


def test_show_quotes_text_and_prints_other_values_as_json() -> None:
    assert [show("a b"), show(5), show(True), show(None), show(["x", 1])] == ["'a b'", "5", "true", "null", '["x", 1]']
    r = reader()
    r.integer("free")
    assert r.problems == ["p:free = <unset> is invalid: must be an integer"]


def test_strings_required_coerced_and_matched() -> None:
    r = reader(named=42)
    assert r.string("free", allowed="a name") == ""
    assert r.string("free") == ""  # a second read of the same missing key adds its own sentence
    assert r.string("named") == "42"
    assert r.string("named", pattern=r"\d+") == "42"
    assert r.problems == ["p:free is required: a name", "p:free is required: set it in the stack file"]
    r = reader(named="abc1")
    assert r.string("named", pattern=r"[a-z]+") == "abc1"
    assert r.problems == ["p:named = 'abc1' is invalid: must match [a-z]+"]
    r = reader(named="abc1")
    r.string("named", pattern=r"[a-z]+", allowed="letters only")
    assert r.problems == ["p:named = 'abc1' is invalid: letters only"]
    r = reader(named="xabc")
    r.string("named", pattern=r"abc")  # the whole value must match, not a part of it
    assert r.problems == ["p:named = 'xabc' is invalid: must match abc"]


@pytest.mark.parametrize(
    ("value", "lo", "hi", "number", "problem"),
    [
        (5, 1, 9, 5, None),
        ("5", 1, 9, 5, None),
        (" 7 ", None, None, 7, None),
        (1, 1, 9, 1, None),
        (9, 1, 9, 9, None),
        (0, 1, 9, 0, "must be an integer from 1 to 9"),  # out of range: reported, the number kept
        (10, 1, 9, 10, "must be an integer from 1 to 9"),
        (0, 1, None, 0, "must be an integer >= 1"),
        (10, None, 9, 10, "must be an integer <= 9"),
        (-5, None, None, -5, None),
        ("x", 1, 9, 1, "must be an integer from 1 to 9"),  # unreadable: reported, the lower bound returned
        ("x", None, 9, 0, "must be an integer <= 9"),
        ("0x10", None, None, 0, "must be an integer"),  # base 10 only
        (True, None, None, 0, "must be an integer"),  # YAML true is not 1
        (False, 0, 1, 0, "must be an integer from 0 to 1"),
        (None, None, None, 0, "must be an integer"),
    ],
)
def test_integers_with_their_bounds(value: object, lo: int | None, hi: int | None, number: int, problem: str | None) -> None:
    r = reader(count=value)
    assert r.integer("count", lo, hi) == number
    assert r.problems == ([] if problem is None else [f"p:count = {show(value)} is invalid: {problem}"])


def test_an_unset_integer_without_default_is_named_unset() -> None:
    r = reader()
    assert r.integer("free", 2, 4) == 2
    assert r.problems == ["p:free = <unset> is invalid: must be an integer from 2 to 4"]


@pytest.mark.parametrize(("value", "result", "ok"), [
    (True, True, True), (False, False, True), ("true", True, True), ("TRUE", True, True), ("False", False, True), ("false", False, True),
    ("yes", False, False), (1, False, False), ("", False, False),
])
def test_booleans_accept_true_and_false_in_any_case(value: object, result: bool, ok: bool) -> None:
    r = reader(flag=value)
    assert r.boolean("flag") is result
    assert r.problems == ([] if ok else [f"p:flag = {show(value)} is invalid: must be true or false"])


def test_optional_keys_take_the_given_default_when_unset() -> None:
    r = reader()
    assert r.optional_boolean("free", True) is True and r.optional_boolean("free", False) is False
    assert r.optional_integer("free", 12, 1, 5) == 12  # the default is not checked against the bounds
    assert r.read == {"free"} and r.problems == []
    r = reader(free="false")
    assert r.optional_boolean("free", True) is False
    r = reader(free="4")
    assert r.optional_integer("free", 12, 1, 5) == 4
    r = reader(free="6")
    assert r.optional_integer("free", 12, 1, 5) == 6
    assert r.problems == ["p:free = '6' is invalid: must be an integer from 1 to 5"]
    r = reader(free="maybe")
    assert r.optional_boolean("free", True) is False
    assert r.problems == ["p:free = 'maybe' is invalid: must be true or false"]


def test_choices_name_the_allowed_values() -> None:
    assert reader(colour="blue").choice("colour", Colour) is Colour.BLUE
    r = reader(colour="green")
    assert r.choice("colour", Colour) is Colour.RED  # the first, so later rules still get a value
    assert r.problems == ["p:colour = 'green' is invalid: must be one of red, blue"]
    r = reader()
    assert r.choice("colour", Colour) is Colour.RED
    assert r.problems == ["p:colour is required: one of red, blue"]


@pytest.mark.parametrize(("value", "result", "problem"), [
    (["a", "b"], ("a", "b"), None),
    ('["a", "b"]', ("a", "b"), None),
    ("", (), None),
    ("  ", (), None),
    ([], (), None),
    ("not json", (), "p:list = 'not json' is invalid: must be a list of strings (YAML list, or a JSON array)"),
    ('{"a": 1}', (), 'p:list = {"a": 1} is invalid: must be a list of strings'),  # the decoded value is shown
    (["a", 1], (), 'p:list = ["a", 1] is invalid: must be a list of strings'),
    (5, (), "p:list = 5 is invalid: must be a list of strings"),
])
def test_string_lists_from_yaml_or_json_text(value: object, result: tuple[str, ...], problem: str | None) -> None:
    r = reader(list=value)
    assert r.strings("list") == result
    assert r.problems == ([] if problem is None else [problem])
