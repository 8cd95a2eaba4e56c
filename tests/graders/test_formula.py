import math

import pytest

from reinforge.graders.formula import FormulaError, evaluate, parse_formula, variables

ENV = {"a": 0.5, "b": 2.0, "name": 1.0}


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("a + b", 2.5),
        ("a - b - 1", -2.5),  # left associative
        ("b / 4 / 2", 0.25),
        ("2 ^ 3 ^ 2", 512.0),  # right associative power
        ("2 ** 3", 8.0),  # ** as a synonym
        ("-b ^ 2", -4.0),  # unary minus binds looser than ^
        ("2 ^ -1", 0.5),
        ("(a + b) * 2", 5.0),
        ("1 + 2 * 3", 7.0),  # precedence
        ("min(a, b, 0.1)", 0.1),
        ("max(a)", 0.5),
        ("abs(-b) + floor(1.7) + ceil(1.2)", 5.0),
        ("exp(0) + sqrt(b * 8) + log(1)", 5.0),
        ("0.5 * name + 0.5 * a", 0.75),
        (".5 + 1e-1", 0.6),
    ],
)
def test_evaluate(formula, expected):
    assert evaluate(parse_formula(formula), ENV) == pytest.approx(expected)


@pytest.mark.parametrize(
    "formula",
    ["", "1 +", "(a + b", "a b", "foo(a)", "abs(a, b)", "a $ b", "__import__('os')", "a + )", "min()"],
)
def test_parse_errors(formula):
    with pytest.raises(FormulaError):
        parse_formula(formula)


def test_variables_and_math_errors():
    assert variables(parse_formula("min(x, y) + 2 * z")) == {"x", "y", "z"}
    with pytest.raises(ZeroDivisionError):
        evaluate(parse_formula("a / 0"), ENV)
    with pytest.raises(ValueError):
        evaluate(parse_formula("sqrt(-1)"), ENV)
    assert math.isclose(evaluate(parse_formula("log(exp(2))"), {}), 2.0)
