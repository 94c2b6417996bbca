"""Teacher-label cache: geometry replay, memmap store, datasets, and the cached training step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _tiny_models import make_tiny
from mgd_lightning.data.batch import LabeledTrainBatch, UnlabeledPairBatch
from mgd_lightning.data.datasets import (
    ImageDataset,
    SampleFiles,
    SegmentationDataset,
    UnlabeledPairDataset,
)
from mgd_lightning.data.mixing import cutmix_box_masks, mix
from mgd_lightning.data.transforms import train_transform
from mgd_lightning.models import DeepLabV3Plus
from mgd_lightning.models.teachers import TeacherPair
from mgd_lightning.tasks import MGDModule
from mgd_lightning.teacher_labels import (
    NO_LABEL,
    CachedLabeledDataset,
    CachedUnlabeledPairDataset,
    GeometryRecordingTransform,
    TeacherLabelCache,
    ViewGeometry,
    build_teacher_label_cache,
    warp_labels,
)

K = 3


def _tiny(seed: int) -> DeepLabV3Plus:
    return make_tiny(K, seed=seed)


@pytest.fixture(scope="module")
def pair() -> TeacherPair:
    return TeacherPair(_tiny(1), _tiny(2))


def _write_images(root: Path, n: int, size: tuple[int, int] = (40, 56)) -> list[SampleFiles]:
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        mask = rng.integers(0, K, size, dtype=np.uint8)
        Image.fromarray(image).save(root / f"im{i}.png")
        Image.fromarray(mask).save(root / f"im{i}_m.png")
        files.append(SampleFiles(f"im{i}", root / f"im{i}.png", root / f"im{i}_m.png"))
    return files


def test_identity_geometry_returns_the_map() -> None:
    labels = torch.randint(0, K, (2, 5, 7), dtype=torch.uint8)
    g = ViewGeometry(False, 5, 7, 5, 7, 0, 0, 0, 0, 5, 7)
    assert torch.equal(warp_labels(labels, g), labels)
    assert ViewGeometry.from_tensor(g.to_tensor()) == g


def test_padding_gets_no_label() -> None:
    labels = torch.zeros(4, 4, dtype=torch.uint8)
    g = ViewGeometry(False, 4, 4, 4, 4, 2, 1, 0, 0, 8, 6)
    out = warp_labels(labels, g)
    assert out.shape == (8, 6)
    assert (out[:2] == NO_LABEL).all() and (out[6:] == NO_LABEL).all()
    assert (out[2:6, 1:5] == 0).all() and (out[2:6, 0] == NO_LABEL).all()


@pytest.mark.parametrize("seed", range(8))
def test_warp_of_the_mask_equals_the_transformed_mask(seed: int) -> None:
    """Replaying the recorded geometry on the raw mask gives the transform's own mask."""
    transform = train_transform(crop_size=48, scales=[1.0, 2.0])
    recorder = GeometryRecordingTransform(transform)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    mask = rng.integers(0, K, (30, 50), dtype=np.uint8)
    img_ref, mask_ref = transform(image, mask, seed=seed)
    img, mask_out = recorder(image, mask, seed=seed)
    assert torch.equal(img, img_ref) and torch.equal(mask_out, mask_ref)
    warped = warp_labels(torch.from_numpy(mask), recorder.records[-1], fill=255)
    assert torch.equal(warped.long(), mask_ref)


def test_cache_stores_the_teachers_argmax(pair: TeacherPair, tmp_path: Path) -> None:
    images = [torch.randn(3, 32, 48), torch.randn(3, 32, 32)]
    cache = build_teacher_label_cache(pair, images, tmp_path, names=["a", "b"])
    reopened = TeacherLabelCache(tmp_path)
    assert len(reopened) == 2 and reopened.index("b") == 1
    for i, x in enumerate(images):
        out = pair([x[None]])
        expected = torch.stack([out.deep[0].logits.argmax(1)[0], out.wide[0].logits.argmax(1)[0]])
        assert torch.equal(reopened.labels_of(i).long(), expected)
    assert cache.labels.dtype == np.uint8


def test_missing_cache_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build_teacher_label_cache"):
        TeacherLabelCache(tmp_path)


def test_cached_datasets_add_keys_and_keep_samples(pair: TeacherPair, tmp_path: Path) -> None:
    files = _write_images(tmp_path, 3)
    crop = 32
    labeled = SegmentationDataset(files, num_classes=K, transform=train_transform(crop))
    plain = SegmentationDataset(files, num_classes=K, transform=train_transform(crop))
    from mgd_lightning.data.transforms import eval_transform

    ev = eval_transform()
    cache = build_teacher_label_cache(pair, [ev(labeled.read(i).image)[0] for i in range(3)],
                                      tmp_path / "c", names=labeled.names)
    wrapped = CachedLabeledDataset(labeled, cache)
    sample, reference = wrapped[(1, 123)], plain[(1, 123)]
    assert torch.equal(sample["image"], reference["image"])
    assert torch.equal(sample["mask"], reference["mask"])
    assert sample["teacher_labels"].shape == (2, crop, crop)
    assert sample["teacher_labels"].dtype == torch.uint8
    assert sample["geometry"].shape == (11,)

    pairs = CachedUnlabeledPairDataset(
        UnlabeledPairDataset(ImageDataset(files), train_transform(crop)), cache)
    item = pairs[(0, 7)]
    for suffix in ("a", "b"):
        assert item[f"teacher_labels_{suffix}"].shape == (2, crop, crop)
        assert item[f"geometry_{suffix}"].shape == (11,)
    pairs.rank = 3
    assert pairs.dataset.rank == 3


def _batch(b: int = 2, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "labeled": {"image": torch.randn(b, 3, size, size, generator=g),
                    "mask": torch.randint(0, K, (b, size, size), generator=g)},
        "unlabeled": {"image_a": torch.randn(b, 3, size, size, generator=g),
                      "image_b": torch.randn(b, 3, size, size, generator=g),
                      "cutmix_mask": cutmix_box_masks(b, size, size, generator=g)},
    }


def test_exact_cached_labels_give_the_uncached_loss(pair: TeacherPair) -> None:
    """With the labels the teachers give on the views, the cached step equals the normal one."""
    module = MGDModule(_tiny(0), pair, num_classes=K)
    batch = _batch()
    lab, unl = batch["labeled"], batch["unlabeled"]
    out = pair([lab["image"], unl["image_a"], unl["image_b"]])

    def labels(view: int) -> torch.Tensor:
        return torch.stack([out.deep[view].logits.argmax(1), out.wide[view].logits.argmax(1)],
                           dim=1).to(torch.uint8)

    cached = {"labeled": {**lab, "teacher_labels": labels(0)},
              "unlabeled": {**unl, "teacher_labels_a": labels(1), "teacher_labels_b": labels(2)}}
    module.eval()  # same BN behaviour for both calls
    expected = module.training_step(batch, 0)
    calls: list[int] = []
    handle = pair.deep.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    got = module.training_step(cached, 0)
    handle.remove()
    assert torch.allclose(got, expected, atol=1e-5)
    assert calls == [2]  # the deep teacher saw the mixed batch only


def test_padding_labels_are_ignored(pair: TeacherPair) -> None:
    module = MGDModule(_tiny(0), pair, num_classes=K, image_weight=0.0, region_weight=0.0,
                       sup_weight=0.0)
    batch = _batch()
    none = torch.full((2, 2, 32, 32), NO_LABEL, dtype=torch.uint8)
    batch["labeled"]["teacher_labels"] = none
    batch["unlabeled"]["teacher_labels_a"] = none
    batch["unlabeled"]["teacher_labels_b"] = none
    loss = module.training_step(batch, 0)
    assert loss is not None and float(loss.detach()) == 0.0


def test_cached_labels_refuse_a_confidence_threshold(pair: TeacherPair) -> None:
    module = MGDModule(_tiny(0), pair, num_classes=K, pixel_confidence_threshold=0.5)
    batch = _batch()
    labels = torch.zeros(2, 2, 32, 32, dtype=torch.uint8)
    batch["labeled"]["teacher_labels"] = labels
    batch["unlabeled"]["teacher_labels_a"] = labels
    batch["unlabeled"]["teacher_labels_b"] = labels
    with pytest.raises(ValueError, match="pixel_confidence_threshold"):
        module.training_step(batch, 0)


def test_mixed_labels_equal_labels_of_mixed_logits() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, K, 8, 8, generator=g), torch.randn(2, K, 8, 8, generator=g)
    box = cutmix_box_masks(2, 8, 8, generator=g)
    student = torch.randn(2, K, 8, 8, generator=g)
    expected = F.cross_entropy(student, mix(a, b, box).argmax(1))
    got = F.cross_entropy(student, mix(a.argmax(1), b.argmax(1), box))
    assert torch.equal(expected, got)


def test_auto_autocast_and_ordinary_outputs() -> None:
    """``"auto"`` resolves per device; outputs are ordinary tensors a loss can save."""
    pair = TeacherPair(_tiny(1), _tiny(2), autocast_dtype="auto")
    assert pair.resolved_autocast_dtype("cpu") in (None, torch.bfloat16)
    out = pair([torch.randn(2, 3, 32, 32)])
    features = out.wide[0].features
    assert not features.is_inference() and not features.requires_grad
    assert features.dtype == torch.float32
    student = torch.randn_like(features, requires_grad=True)
    F.mse_loss(student, features).backward()
    assert student.grad is not None
    assert TeacherPair(_tiny(1), _tiny(2), autocast_dtype=None).resolved_autocast_dtype(
        "cpu") is None


def test_callback_builds_the_cache_and_trains_from_it(tmp_path: Path) -> None:
    """The callback (what a LightningCLI config names) attaches the cache when fitting starts."""
    import lightning.pytorch as pl

    from mgd_lightning.datamodules import SyntheticDataModule
    from mgd_lightning.teacher_labels import TeacherLabelCacheCallback

    datamodule = SyntheticDataModule(
        image_size=32, num_train=8, num_val=2, num_test=2, labeled_ratio=0.5, batch_size=2
    )
    k = datamodule.num_classes

    def tiny(seed: int) -> DeepLabV3Plus:
        return make_tiny(k, seed=seed, head_channels=8)

    keys: list[tuple[set[str], set[str]]] = []

    class _Keys(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            keys.append((set(batch["labeled"]), set(batch["unlabeled"])))

    module = MGDModule(tiny(0), TeacherPair(tiny(1), tiny(2)), num_classes=k)
    trainer = pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[TeacherLabelCacheCallback(tmp_path / "labels"), _Keys()],
    )
    trainer.fit(module, datamodule=datamodule)
    assert (tmp_path / "labels" / "labeled" / "meta.json").is_file()
    assert (tmp_path / "labels" / "unlabeled" / "meta.json").is_file()
    # the batch carries exactly the keys data/batch.py declares, the optional ones included
    declared = set(LabeledTrainBatch.__annotations__), set(UnlabeledPairBatch.__annotations__)
    assert keys[0] == declared


def test_callback_needs_teachers(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    from mgd_lightning.teacher_labels import TeacherLabelCacheCallback

    callback = TeacherLabelCacheCallback(tmp_path)
    with pytest.raises(ValueError, match="teachers"):
        callback.on_fit_start(pl.Trainer(logger=False), pl.LightningModule())
