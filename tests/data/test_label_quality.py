"""Label quality against hand-worked cases and Krippendorff's own published example."""

from __future__ import annotations

import pytest

from reinforge.data.label_quality import (
    Label,
    aggregate,
    gold_accuracy,
    krippendorff_alpha,
    label_value,
    labels_per_hour,
    pairwise_agreement,
)

A, B = (0, 1), (1, 0)  # "first response better", "second response better"


@pytest.mark.parametrize(
    ("units", "agreement", "alpha"),
    [
        # all agree, two categories in use: o_AA = 2, o_BB = 2, no disagreement -> alpha 1
        ({"i": [A, A], "j": [B, B]}, 1.0, 1.0),
        # 1 of 3 items split: o_AB = o_BA = 1, n_A = n_B = 3, n = 6 -> 1 - 5 * 2 / (2 * 3 * 3) = 4/9
        ({"i": [A, A], "j": [A, B], "k": [B, B]}, 0.6667, 4 / 9),
        # every item split: o_AB = o_BA = 2, n_A = n_B = 2, n = 4 -> 1 - 3 * 4 / 8 = -0.5 (worse than chance)
        ({"i": [A, B], "j": [B, A]}, 0.0, -0.5),
        # skips are missing values, and an item left with one value is unpairable: same as the 4/9 case
        ({"i": [A, A, None], "j": [A, B], "k": [B, B], "l": [A, None]}, 0.6667, 4 / 9),
        # three labels on one item: pairs (A,A) (A,B) (A,B) -> 1/3 agree; o_AA = 2 * 1/2, o_AB = o_BA = 2 * 1/2,
        # plus item j (B, B): o_BB = 2. n_A = 2, n_B = 3, n = 5 -> 1 - 4 * 2 / (2 * 2 * 3) = 1/3
        ({"i": [A, A, B], "j": [B, B]}, 0.5, 1 / 3),
        # one category only: no expected disagreement, alpha undefined
        ({"i": [A, A]}, 1.0, None),
        # nothing pairable
        ({"i": [A], "j": [None, B]}, None, None),
    ],
)
def test_agreement_and_alpha_hand_worked(units, agreement, alpha):
    assert pairwise_agreement(units) == agreement
    got = krippendorff_alpha(units)
    assert got == pytest.approx(alpha) if alpha is not None else got is None


def test_alpha_matches_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", C: 4 observers, 12 units,
    # nominal data with missing values; the paper's answer is alpha = 0.743
    rows = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = {u: [(r[u],) if r[u] is not None else None for r in rows] for u in range(12)}
    assert round(krippendorff_alpha(units), 3) == 0.743


def test_gold_accuracy_per_annotator():
    gold = {"g1": A, "g2": B}
    labels = [
        Label("g1", "ann", A),  # right
        Label("g2", "ann", A),  # wrong
        Label("g1", "bob", A),  # right
        Label("g2", "bob", None),  # a skip: not answered, counted apart
        Label("x", "bob", B),  # not a gold item
    ]
    assert gold_accuracy(labels, gold) == {
        "ann": {"correct": 1, "answered": 2, "skipped": 0, "accuracy": 0.5},
        "bob": {"correct": 1, "answered": 1, "skipped": 1, "accuracy": 1.0},
    }


def test_labels_per_hour():
    # 4 labels over 30 minutes: 3 intervals in 0.5 h = 6 an hour; one label alone has no rate
    labels = [Label(i, "ann", A, t) for i, t in enumerate([100.0, 700.0, 1300.0, 1900.0])]
    assert labels_per_hour(labels + [Label("z", "bob", A, 50.0)]) == {"ann": 6.0, "bob": None}


@pytest.mark.parametrize(
    ("values", "status", "ranking"),
    [
        ([A, A, B], "decided", A),  # 2 votes to 1
        ([A, B], "tie", None),  # split evenly: no preference, said so
        ([A, B, None], "tie", None),  # a skip does not break a tie
        ([None, B], "decided", B),  # a skip is no vote
        ([None, None], "skipped", None),
        ([], "unlabelled", None),
    ],
)
def test_majority_aggregation(values, status, ranking):
    out = aggregate(values)
    assert (out.status, out.ranking) == (status, ranking)
    assert out.skips == values.count(None)


def test_bradley_terry_aggregation_orders_by_strength():
    # 0 beats 1 twice, 1 beats 0 once; 2 loses every pair: 0 > 1 > 2 though no ranking says it twice
    assert aggregate([(0, 1, 2), (1, 0, 2), (0, 2, 1)], "bradley_terry").ranking == (0, 1, 2)
    assert aggregate([A, B], "bradley_terry").status == "tie"


def test_label_value_from_ranking_and_thumbs():
    assert label_value([1, 0], None, 2) == B
    assert label_value(None, {"0": -1, "1": 1}, 2) == B
    assert label_value(None, {"0": 1, "1": 1}, 2) is None  # two ups: no preference
    assert label_value([0], None, 2) is None  # a partial ranking is not a value
