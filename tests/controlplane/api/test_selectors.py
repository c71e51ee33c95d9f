"""Label and field selectors: Kubernetes' grammar, matching, canonical form and error text."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.errors import BadRequest
from controlplane.api.selectors import (
    EXISTS,
    IN,
    FieldSelector,
    LabelSelector,
    Requirement,
    escape_field_value,
    requirement,
)

NAME_PART_ERROR = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

EMPTY_SET_ERROR = (
    "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty")


@pytest.mark.parametrize("text, labels, expected", [
    ("", {}, True),
    ("   ", {"a": "b"}, True),
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (web, db)", {"app": "db"}, True),
    ("app in (web,db)", {"app": "cache"}, False),
    ("app notin (web,db)", {}, True),
    ("app notin (web,db)", {"app": "web"}, False),
    ("app", {"app": ""}, True),
    ("app", {}, False),
    ("!app", {}, True),
    ("!app", {"app": "x"}, False),
    ("app=", {"app": ""}, True),
    ("x in ()", {"x": ""}, True),
    ("app=web, tier in (fe)", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier in (fe)", {"app": "web", "tier": "be"}, False),
    ("rank>2", {"rank": "3"}, True),
    ("rank>2", {"rank": "2"}, False),
    ("rank<2", {"rank": "-1"}, True),
    ("rank<2", {"rank": "x"}, False),
    ("rank<2", {}, False),
    ("\tapp\n=\rweb ", {"app": "web"}, True),
    ("example.com/app=web", {"example.com/app": "web"}, True),
])
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("z=1,a=2", "a=2,z=1"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("  b != c ,  !a , d == e", "!a,b!=c,d==e"),
    ("app in (b, a, b)", "app in (a,b)"),
    ("in in (notin, in)", "in in (in,notin)"),
    ("a > 5", "a>5"),
])
def test_label_selector_canonical_string(text: str, canonical: str) -> None:
    assert str(LabelSelector.parse(text)) == canonical


@pytest.mark.parametrize("text, message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("! =a", "unable to parse requirement: found '=', expected: identifier"),
    ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("app:monolith",
     f'unable to parse requirement: <nil>: Invalid value: "app:monolith": {NAME_PART_ERROR}'),
    ("a=demo-{nginx}",
     f'unable to parse requirement: values[0][a]: Invalid value: "demo-{{nginx}}": '
     f"{LABEL_VALUE_ERROR}"),
    ("a>x", 'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_label_selector_parse_errors_use_kubernetes_text(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        LabelSelector.parse(text)
    assert caught.value.message == message
    assert caught.value.code == 400


def test_label_selector_reports_every_bad_value_in_sorted_order() -> None:
    with pytest.raises(BadRequest) as caught:
        LabelSelector.parse("a in (zz/x, b/y)")
    assert caught.value.message == (
        f'unable to parse requirement: [values[0][a]: Invalid value: "b/y": {LABEL_VALUE_ERROR}, '
        f'values[1][a]: Invalid value: "zz/x": {LABEL_VALUE_ERROR}]')


def test_label_key_prefix_must_be_a_dns_subdomain() -> None:
    with pytest.raises(BadRequest) as caught:
        LabelSelector.parse("app.kubernetes_io/name=x")
    assert caught.value.message.startswith(
        'unable to parse requirement: <nil>: Invalid value: "app.kubernetes_io/name": prefix part '
        "a lowercase RFC 1123 subdomain must consist of")


def test_label_value_longer_than_63_is_rejected() -> None:
    with pytest.raises(BadRequest, match="must be no more than 63 characters"):
        LabelSelector.parse("a=" + "v" * 64)


def test_from_object_match_labels_becomes_query() -> None:
    selector = LabelSelector.from_object({"matchLabels": {"app": "x"}})
    assert selector.to_query() == "app=x"
    assert selector == LabelSelector.parse("app=x")


def test_from_object_combines_labels_and_expressions_sorted_by_key() -> None:
    selector = LabelSelector.from_object({
        "matchLabels": {"tier": "fe", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "Exists"},
            {"key": "role", "operator": "In", "values": ["b", "a"]},
        ],
    })
    assert str(selector) == "app=web,!canary,env notin (dev,prod),role in (a,b),tier=fe,zone"
    assert selector.matches({"app": "web", "tier": "fe", "role": "a", "zone": "z"})
    assert not selector.matches({"app": "web", "tier": "fe", "role": "a"})
    assert LabelSelector.parse(str(selector)) == selector


def test_from_object_empty_selects_everything_and_none_selects_nothing() -> None:
    assert LabelSelector.from_object({}).is_empty()
    assert LabelSelector.from_object({"matchLabels": {}, "matchExpressions": []}).matches({})
    nothing = LabelSelector.from_object(None)
    assert not nothing.is_empty()
    assert not nothing.matches({})
    assert str(nothing) == ""


@pytest.mark.parametrize("selector, message", [
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, EMPTY_SET_ERROR),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}, EMPTY_SET_ERROR),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: []string{"x"}: values set must be empty for exists and does not '
     "exist"),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchLabels": {"Bad_": "x"}}, f'key: Invalid value: "Bad_": {NAME_PART_ERROR}'),
    ({"matchLabels": {"a": "x y"}}, f'values[0][a]: Invalid value: "x y": {LABEL_VALUE_ERROR}'),
])
def test_from_object_errors(selector: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        LabelSelector.from_object(selector)
    assert caught.value.message == message


def test_from_set_and_requirement_builders() -> None:
    assert str(LabelSelector.from_set({"b": "2", "a": "1"})) == "a=1,b=2"
    assert LabelSelector.from_set({}).is_empty()
    assert requirement("app", IN, ["b", "a"]) == Requirement("app", IN, ("a", "b"))
    assert str(requirement("app", EXISTS)) == "app"
    with pytest.raises(BadRequest, match="exact-match compatibility requires one single value"):
        requirement("app", "=", ["a", "b"])
    with pytest.raises(BadRequest, match='operator: Unsupported value: "~"'):
        requirement("app", "~", ["a"])


_ALNUM = "abcXYZ019"
_NAME = st.builds(lambda a, mid, b: a + mid + b, st.sampled_from(_ALNUM),
                  st.text(alphabet=_ALNUM + "-_.", max_size=6), st.sampled_from(_ALNUM))
_DNS_LABEL = st.builds(lambda a, mid: a + mid, st.sampled_from("ab09"),
                       st.text(alphabet="ab09", max_size=4))
_PREFIX = st.lists(_DNS_LABEL, min_size=1, max_size=3).map(".".join)
_KEY = st.one_of(_NAME, st.builds(lambda p, n: f"{p}/{n}", _PREFIX, _NAME))
_VALUE = st.one_of(st.just(""), _NAME)
_SPACE = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def _requirement_texts(draw: st.DrawFn) -> str:
    key = draw(_KEY)
    form = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    pad = draw(_SPACE)
    if form == "exists":
        return key
    if form == "!":
        return f"!{pad}{key}"
    if form in ("in", "notin"):
        values = draw(st.lists(_NAME, min_size=1, max_size=4))
        return f"{key} {form}{pad}({pad}{(',' + pad).join(values)}{pad})"
    if form in (">", "<"):
        return f"{key}{pad}{form}{pad}{draw(st.integers(0, 10**6))}"
    return f"{key}{pad}{form}{pad}{draw(_VALUE)}"


@given(st.lists(_requirement_texts(), max_size=5), _SPACE)
def test_label_selector_string_round_trips(parts: list[str], pad: str) -> None:
    selector = LabelSelector.parse(f"{pad},{pad}".join(parts))
    again = LabelSelector.parse(str(selector))
    assert again == selector
    assert str(again) == str(selector)


@given(st.text(alphabet="ab=!(),<> \tinot-_./19\x00", max_size=24))
def test_label_selector_any_text_parses_or_is_a_bad_request(text: str) -> None:
    try:
        selector = LabelSelector.parse(text)
    except BadRequest:
        return
    assert LabelSelector.parse(str(selector)) == selector


@pytest.mark.parametrize("text, fields, expected", [
    ("", {}, True),
    ("metadata.name=foo", {"metadata.name": "foo"}, True),
    ("metadata.name==foo", {"metadata.name": "bar"}, False),
    ("spec.nodeName=", {}, True),
    ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
    ("status.phase!=Running", {"status.phase": "Running"}, False),
    ("a=1,b!=2", {"a": "1", "b": "3"}, True),
    ("a=x\\,y", {"a": "x,y"}, True),
    ("a=x\\=y\\\\", {"a": "x=y\\"}, True),
])
def test_field_selector_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert FieldSelector.parse(text).matches(fields) is expected


def test_field_selector_introspection() -> None:
    selector = FieldSelector.parse("status.phase!=Failed,metadata.name==web-0,spec.nodeName=n1")
    assert selector.requirements == [
        ("metadata.name", "=", "web-0"), ("spec.nodeName", "=", "n1"),
        ("status.phase", "!=", "Failed")]
    assert selector.exact("metadata.name") == "web-0"
    assert selector.exact("status.phase") is None
    assert selector.exact("metadata.namespace") is None
    assert selector.fields() == {"metadata.name", "spec.nodeName", "status.phase"}
    assert str(selector) == "metadata.name=web-0,spec.nodeName=n1,status.phase!=Failed"
    assert FieldSelector.parse("").is_empty()
    assert FieldSelector.parse(",,").is_empty()


@pytest.mark.parametrize("text, message", [
    ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
    ("a=1,b", "invalid selector: 'a=1,b'; can't understand 'b'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a!==b", "invalid field selector: unescaped character in value: 61"),
    ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_parse_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        FieldSelector.parse(text)
    assert caught.value.message == message


def test_escape_field_value() -> None:
    assert escape_field_value("a\\b,c=d!") == "a\\\\b\\,c\\=d!"


_FIELD = st.text(alphabet="abcXYZ09.", min_size=1, max_size=12)


@given(st.lists(st.tuples(_FIELD, st.sampled_from(["=", "==", "!="]), st.text(max_size=8)),
                max_size=5))
def test_field_selector_string_round_trips(terms: list[tuple[str, str, str]]) -> None:
    text = ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in terms)
    selector = FieldSelector.parse(text)
    assert sorted(v for _, _, v in selector.requirements) == sorted(v for _, _, v in terms)
    again = FieldSelector.parse(str(selector))
    assert again == selector
    assert str(again) == str(selector)


@given(st.text(alphabet="ab=!,\\. x", max_size=20))
def test_field_selector_any_text_parses_or_is_a_bad_request(text: str) -> None:
    try:
        selector = FieldSelector.parse(text)
    except BadRequest:
        return
    assert FieldSelector.parse(str(selector)) == selector
