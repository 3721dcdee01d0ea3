import pytest

from sparkbooks.exceptions import MetadataError, ParameterError
from sparkbooks.parameters import Parameter, parse_parameters_cell, validate

CELL = '''profile: str = "auto"  # which profile
n_rows: int = 1_000  # rows
ratio: float = 0.5  # a fraction
name: str | None = None  # optional name
fast: bool = True  # go fast
kind: Literal["a", "b"] = "a"  # one of two
'''


@pytest.fixture
def params():
    return parse_parameters_cell(CELL, constraints={"n_rows": {"interval": [10, None]}, "ratio": {"interval": [0, 1]}},
                                 playbook="demo")


def test_cell_is_parsed_with_types_defaults_help_and_constraints(params):
    assert list(params) == ["profile", "n_rows", "ratio", "name", "fast", "kind"]
    assert (params["n_rows"].type, params["n_rows"].default, params["n_rows"].help) == ("int", 1000, "rows")
    assert params["name"].optional and params["name"].annotation == "str | None"
    assert params["kind"].choices == ("a", "b")
    assert params["n_rows"].interval == (10, None)


def test_message_follows_the_sklearn_template(params):
    with pytest.raises(ParameterError) as info:
        params["n_rows"].check(0, playbook="demo")
    assert str(info.value) == "The 'n_rows' parameter of playbook 'demo' must be an int in [10, inf). Got 0 instead."
    with pytest.raises(ParameterError, match=r"must be one of 'a', 'b'\. Got 'c' instead"):
        params["kind"].check("c", playbook="demo")


@pytest.mark.parametrize(("name", "text", "value"), [
    ("n_rows", "2000", 2000), ("n_rows", "2_000", 2000), ("n_rows", "1e6", 1_000_000),
    ("ratio", "0.25", 0.25), ("fast", "false", False), ("fast", "YES", True),
    ("name", "none", None), ("name", "x", "x"),
])
def test_command_line_text_is_parsed_by_declared_type(params, name, text, value):
    assert params[name].parse(text) == value


@pytest.mark.parametrize(("name", "text"), [("n_rows", "abc"), ("n_rows", "1.5"), ("ratio", "half"), ("fast", "maybe")])
def test_mistyped_text_is_refused_naming_the_parameter(params, name, text):
    with pytest.raises(ParameterError, match=f"The '{name}' parameter of playbook 'demo' must be"):
        params[name].parse(text, playbook="demo")


def test_values_are_type_checked_bool_is_not_an_int(params):
    with pytest.raises(ParameterError):
        params["n_rows"].check(True, playbook="demo")
    assert params["ratio"].check(1, playbook="demo") == 1.0
    with pytest.raises(ParameterError):
        params["ratio"].check(float("nan"), playbook="demo")
    with pytest.raises(ParameterError):
        params["ratio"].check(1.5, playbook="demo")


def test_unknown_parameters_are_refused_listing_valid_ones(params):
    with pytest.raises(ParameterError) as info:
        validate({"no_such_param": 1}, params, playbook="demo")
    assert "'no_such_param'" in str(info.value) and "profile, n_rows, ratio" in str(info.value)


@pytest.mark.parametrize("cell", [
    "x = 3",  # untyped
    "x: list = [1]",  # unsupported type
    "x: int = y",  # not a literal
    "import os",
    "x: int = 'three'",  # default breaks its own type
])
def test_malformed_cells_are_metadata_errors(cell):
    with pytest.raises(MetadataError):
        parse_parameters_cell(cell, playbook="demo")


def test_constraints_for_undeclared_parameters_are_errors():
    with pytest.raises(MetadataError, match="not declared: ghost"):
        parse_parameters_cell("x: int = 1", constraints={"ghost": {"interval": [0, 1]}})


def test_describe_reads_naturally():
    assert Parameter("x", "float", 0.5, interval=(None, 2)).describe() == "a float in (-inf, 2]"
    assert Parameter("x", "int", 1, optional=True).describe() == "an int or None"


LISTS = '''levels: list[int] = [1, 2, 4]  # concurrency levels
ratios: list[float] = [0.5]  # fractions
names: list[str] | None = None  # optional names
'''


@pytest.fixture
def lists():
    return parse_parameters_cell(LISTS, constraints={"levels": {"interval": [1, 64], "length": [1, 4]}}, playbook="demo")


def test_list_parameters_are_declared_typed_and_described(lists):
    levels = lists["levels"]
    assert (levels.type, levels.element, levels.is_list, levels.default) == ("list[int]", "int", True, [1, 2, 4])
    assert levels.describe() == "a list of ints in [1, 64] with 1–4 elements"
    assert lists["names"].annotation == "list[str] | None"


@pytest.mark.parametrize(("text", "value"), [("1,2,8", [1, 2, 8]), ("[1, 2, 8]", [1, 2, 8]), (" 4 ", [4]), ("1e3", [1000])])
def test_list_text_is_parsed_from_commas_or_json(lists, text, value):
    assert lists["levels"].parse(text) == value


@pytest.mark.parametrize(("value", "why"), [([0, 2], "element out of range"), ([1, 2, 3, 4, 5], "too long"),
                                            ([], "too short"), ([1.5], "not an int"), ("1,2", "text, not a list"),
                                            ([True], "bool is not an int")])
def test_list_values_are_checked_element_by_element(lists, value, why):
    with pytest.raises(ParameterError, match="The 'levels' parameter of playbook 'demo' must be a list of ints"):
        lists["levels"].check(value, playbook="demo")


def test_list_text_that_does_not_parse_names_the_parameter(lists):
    for text in ("1,two", "[1, 2", '{"a": 1}'):
        with pytest.raises(ParameterError, match="'levels' parameter"):
            lists["levels"].parse(text, playbook="demo")
    assert lists["ratios"].check((1, 0.25), playbook="demo") == [1.0, 0.25]


def test_length_constraint_needs_a_list():
    with pytest.raises(MetadataError, match="'length' constraint needs a list"):
        parse_parameters_cell("n: int = 1", constraints={"n": {"length": [1, 2]}})
