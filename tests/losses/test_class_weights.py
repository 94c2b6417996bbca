"""Class-weighted CE of the supervised loss (rare classes, e.g. median-frequency balancing)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _tiny_models import make_tiny
from mgd_lightning.tasks import SupervisedModule


def _task(**kwargs: object) -> SupervisedModule:
    return SupervisedModule(make_tiny(), num_classes=3, **kwargs)  # type: ignore[arg-type]


def test_weighted_mean_matches_torch_and_ignores_void() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    target[0, :2] = 255
    weights = [0.5, 1.0, 4.0]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    torch.testing.assert_close(_task(class_weights=weights).supervised_loss(logits, target),
                               expected)
    # equal weights give the plain mean, whatever their value
    torch.testing.assert_close(_task(class_weights=[2.0] * 3).supervised_loss(logits, target),
                               _task().supervised_loss(logits, target))


def test_all_void_gives_zero() -> None:
    logits = torch.randn(1, 3, 4, 4)
    target = torch.full((1, 4, 4), 255)
    loss = _task(class_weights=[1.0, 2.0, 3.0]).supervised_loss(logits, target)
    assert loss.item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_weights": [1.0, 2.0]}, "3 finite numbers"),
        ({"class_weights": [1.0, -1.0, 1.0]}, "3 finite numbers"),
        ({"class_weights": [1.0, float("nan"), 1.0]}, "3 finite numbers"),
        ({"class_weights": [1.0] * 3, "supervised_loss": "ohem"}, "'ce' only"),
    ],
)
def test_bad_weights_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _task(**kwargs)
