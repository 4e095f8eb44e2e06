"""hidden_for_parameters: the hidden size closest to a parameter budget, found without allocating."""
import pytest
from torch import nn

from rnnkit.models.sizing import count_parameters, hidden_for_parameters


def test_count_parameters_counts_a_tied_weight_once():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    assert count_parameters(nn.ModuleList([a, b])) == 16 + 4 + 4


@pytest.mark.parametrize("budget", [1, 50, 999, 70_000])
def test_closest_hidden_size(budget):
    # 3h + (h + 1) = 4h + 1 parameters
    h = hidden_for_parameters(lambda h: nn.Sequential(nn.Linear(3, h, bias=False), nn.Linear(h, 1)), budget)
    assert h >= 1
    best = min(range(1, budget + 2), key=lambda k: abs(4 * k + 1 - budget))
    assert abs(4 * h + 1 - budget) == abs(4 * best + 1 - budget)


def test_huge_models_are_never_allocated():
    h = hidden_for_parameters(lambda h: nn.Linear(h, h), 10**10)  # 40 GB in float32 if it were real
    assert abs((h * h + h) - 10**10) <= 2 * h


def test_bad_budget():
    with pytest.raises(ValueError, match="expected a budget >= 1 parameters, got 0"):
        hidden_for_parameters(lambda h: nn.Linear(h, h), 0)
