import pytest

from reinforge.graders import from_spec
from reinforge.graders.base import make_sample
from tests.graders.openai_examples import STRING_CHECK


@pytest.mark.parametrize(
    "op, output, reference, expected",
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "paris", "Paris", 0.0),  # eq is case-sensitive
        ("ne", "London", "Paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "It is Paris.", "Paris", 1.0),  # contains
        ("like", "It is paris.", "Paris", 0.0),  # like is case-sensitive
        ("ilike", "IT IS PARIS", "paris", 1.0),  # ilike ignores case
        ("ilike", "Lyon", "paris", 0.0),
    ],
)
def test_operations(op, output, reference, expected):
    g = from_spec({**STRING_CHECK, "operation": op})
    assert g.grade({"label": reference}, make_sample(output)).reward == expected


def test_openai_example():
    g = from_spec(STRING_CHECK)
    grades = g.grade_batch([({"label": "yes"}, make_sample("yes")), ({"label": "yes"}, make_sample("no"))])
    assert [x.reward for x in grades] == [1.0, 0.0]


def test_missing_variable_is_recorded_zero():
    g = from_spec(STRING_CHECK)
    (grade,) = g.grade_batch([({}, make_sample("yes"))])
    assert grade.reward == 0.0 and grade.errors == {"invalid_variable_error": True}
