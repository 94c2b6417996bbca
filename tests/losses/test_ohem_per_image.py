"""OHEM's minimum kept pixels expressed per image (recipes independent of batch and GPUs)."""

from __future__ import annotations

import pytest
import torch

from _tiny_models import make_tiny
from mgd_lightning.losses.ohem import ohem_cross_entropy
from mgd_lightning.tasks import SupervisedModule


def _task(**kwargs: object) -> SupervisedModule:
    return SupervisedModule(make_tiny(), num_classes=3, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [1, 3])
def test_min_kept_scales_with_the_images_of_the_batch(batch: int) -> None:
    task = _task(supervised_loss="ohem", ohem_threshold=0.0, ohem_min_kept_per_image=100)
    generator = torch.Generator().manual_seed(batch)
    logits = torch.randn(batch, 3, 16, 16, generator=generator)
    target = torch.randint(0, 3, (batch, 16, 16), generator=generator)
    expected = ohem_cross_entropy(logits, target, 0.0, 100 * batch)
    torch.testing.assert_close(task.supervised_loss(logits, target), expected)
    assert not torch.allclose(expected, ohem_cross_entropy(logits, target, 0.0, 100 * 2))


def test_negative_is_refused() -> None:
    with pytest.raises(ValueError, match="ohem_min_kept_per_image"):
        _task(ohem_min_kept_per_image=-1)
