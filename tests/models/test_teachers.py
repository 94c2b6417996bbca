"""TeacherPair: frozen, locked in eval, no graph, BN modes, batched views, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _tiny_models import make_tiny
from mgd_lightning.models import DeepLabV3Plus, TeacherPair, sha256_file


def _pair(**kwargs: object) -> TeacherPair:
    return TeacherPair(make_tiny(seed=1), make_tiny(seed=2), **kwargs)  # type: ignore[arg-type]


def _bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_b" in k}


def _randomise_bn_stats(module: nn.Module) -> None:
    """Give the running statistics values that differ from any batch's."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)


class _Task(nn.Module):
    """A stand-in for a training module holding a student and the teachers."""

    def __init__(self, pair: TeacherPair) -> None:
        super().__init__()
        self.student = make_tiny(seed=5)
        self.teachers = pair


def test_frozen_and_locked_in_eval() -> None:
    task = _Task(_pair())
    task.train()
    assert task.training and task.teachers.training
    assert not task.teachers.deep.training and not task.teachers.wide.training
    assert not any(m.training for m in task.teachers.deep.modules())
    assert all(not p.requires_grad for p in task.teachers.parameters())
    assert all(p.requires_grad for p in task.student.parameters())
    trainable = {id(p) for p in task.parameters() if p.requires_grad}
    assert trainable.isdisjoint(id(p) for p in task.teachers.parameters())


def test_outputs_carry_no_graph_and_student_backward_works() -> None:
    task = _Task(_pair()).train()
    x = torch.randn(2, 3, 32, 32)
    out = task.teachers([x])
    assert out.deep is not None and out.wide is not None
    for o in (out.deep[0], out.wide[0]):
        assert not o.logits.requires_grad and o.logits.grad_fn is None
        assert not o.features.requires_grad and o.features.grad_fn is None
    student = task.student(x)
    loss = F.mse_loss(student.features, out.wide[0].features) + F.cross_entropy(
        student.logits, out.deep[0].logits.argmax(1)
    )
    loss.backward()
    assert all(p.grad is None for p in task.teachers.parameters())
    assert task.student.classifier.weight.grad is not None


def test_running_stats_unchanged_in_training_module() -> None:
    task = _Task(_pair()).train()
    before = _bn_buffers(task.teachers)
    task.teachers([torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)])
    after = _bn_buffers(task.teachers)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_batch_mode_uses_batch_statistics_and_keeps_buffers() -> None:
    deep, wide = make_tiny(seed=1), make_tiny(seed=2)
    _randomise_bn_stats(deep)
    _randomise_bn_stats(wide)
    eval_pair = TeacherPair(deep, wide, bn_mode="eval", autocast_dtype=None)
    x = torch.randn(4, 3, 32, 32)
    eval_out = eval_pair.run("deep", x)
    batch_pair = TeacherPair(deep, wide, bn_mode="batch", autocast_dtype=None).train()
    before = _bn_buffers(batch_pair)
    batch_out = batch_pair.run("deep", x)
    after = _bn_buffers(batch_pair)
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. num_batches_tracked
    assert not torch.allclose(batch_out.logits, eval_out.logits, atol=1e-3)
    # batch mode equals a plain train-mode forward (the reference), minus the buffer update
    reference = make_tiny(seed=1)
    reference.load_state_dict(deep.state_dict())
    with torch.no_grad():
        expected = reference.train()(x)
    torch.testing.assert_close(batch_out.logits, expected.logits)
    assert not deep.training and all(not m.training for m in deep.modules())
    assert all(m.track_running_stats for m in deep.modules() if isinstance(m, nn.BatchNorm2d))


def test_batch_mode_statistics_are_per_view() -> None:
    deep, wide = make_tiny(seed=1), make_tiny(seed=2)
    pair = TeacherPair(deep, wide, bn_mode="batch", autocast_dtype=None)
    assert pair.concat_views  # the default does not pool statistics over views in batch mode
    views = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32) * 3 + 1]
    out = pair(views, teachers=("deep",))
    assert out.deep is not None
    for view, got in zip(views, out.deep, strict=True):
        torch.testing.assert_close(got.logits, pair.run("deep", view).logits)


def test_batched_views_equal_separate_calls() -> None:
    pair = _pair()
    _randomise_bn_stats(pair.deep)
    views = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(1, 3, 32, 32)]
    batched = pair(views)
    assert batched.deep is not None and batched.wide is not None
    for name, outs in (("deep", batched.deep), ("wide", batched.wide)):
        assert len(outs) == 3
        for view, out in zip(views, outs, strict=True):
            alone = pair.run(name, view)  # type: ignore[arg-type]
            torch.testing.assert_close(out.logits, alone.logits, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out.features, alone.features, atol=1e-5, rtol=1e-5)


def test_channels_last_keeps_the_function_and_the_loaded_weights() -> None:
    deep_src, wide_src = make_tiny(seed=7), make_tiny(seed=8)
    states = deep_src.state_dict(), wide_src.state_dict()
    plain = TeacherPair.from_state_dicts(make_tiny(), make_tiny(), *states, autocast_dtype=None)
    fast = TeacherPair.from_state_dicts(
        make_tiny(), make_tiny(), *states, autocast_dtype=None, channels_last=True
    )
    weights = [p for p in fast.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert torch.equal(fast.wide.classifier.weight, wide_src.classifier.weight)
    assert "channels_last=True" in repr(fast)
    x = torch.randn(3, 3, 32, 32)
    for name in ("deep", "wide"):
        a, b = plain.run(name, x), fast.run(name, x)  # type: ignore[arg-type]
        torch.testing.assert_close(b.logits, a.logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(b.features, a.features, atol=1e-4, rtol=1e-4)
        assert b.logits.dtype == x.dtype and not b.logits.requires_grad


def test_one_batch_is_one_view() -> None:
    pair = _pair()
    x = torch.randn(2, 3, 32, 32)
    out = pair(x)
    assert out.deep is not None and out.wide is not None
    assert len(out.deep) == 1 and len(out.wide) == 1
    torch.testing.assert_close(out.deep[0].logits, pair(x)[0][0].logits)
    torch.testing.assert_close(out.wide[0].logits, pair([x]).wide[0].logits)  # type: ignore[index]


def test_views_of_different_sizes_and_teacher_choice() -> None:
    pair = _pair(concat_views=False)
    views = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 48, 32)]
    out = pair(views, teachers=("wide",))
    assert out.deep is None and out.wide is not None
    assert [tuple(o.logits.shape) for o in out.wide] == [(2, 3, 32, 32), (2, 3, 48, 32)]
    out = _pair()(views, teachers=("deep",))
    assert out.deep is not None and out.deep[1].features.shape == (2, 16, 12, 8)


def test_autocast_bfloat16_outputs_input_dtype() -> None:
    pair = _pair(autocast_dtype="bfloat16")
    assert pair.autocast_dtype is torch.bfloat16
    x = torch.randn(2, 3, 32, 32)
    out = pair.run("deep", x)
    assert out.logits.dtype == torch.float32 and out.features.dtype == torch.float32
    reference = _pair().run("deep", x)
    torch.testing.assert_close(out.logits, reference.logits, atol=0.5, rtol=0.1)


def test_num_classes() -> None:
    assert _pair().num_classes == 3
    with pytest.raises(ValueError, match="different numbers of classes"):
        TeacherPair(make_tiny(num_classes=3), make_tiny(num_classes=4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bn_mode": "train"}, "bn_mode"), ({"autocast_dtype": "int8"}, "autocast_dtype")],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _pair(**kwargs)


def test_bad_calls() -> None:
    pair = _pair()
    with pytest.raises(ValueError, match="views"):
        pair([])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) tensor.*\(3, 32, 32\)"):
        pair(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="teachers"):
        pair([torch.zeros(1, 3, 32, 32)], teachers=("student",))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="teacher name"):
        pair.run("student", torch.zeros(1, 3, 32, 32))  # type: ignore[arg-type]


def test_from_files_records_sources(tmp_path: Path) -> None:
    deep_src, wide_src = make_tiny(seed=7), make_tiny(seed=8)
    deep_file = tmp_path / "teacher-deep.ckpt"
    torch.save(
        {"state_dict": {"branch1." + k: v for k, v in deep_src.state_dict().items()}}, deep_file
    )
    wide_file = tmp_path / "teacher-wide.pt"
    torch.save(wide_src.state_dict(), wide_file)
    pair = TeacherPair(make_tiny(), make_tiny(), deep_weights=deep_file, wide_weights=wide_file,
                       autocast_dtype=None)
    assert pair.sources["deep"] == {"path": str(deep_file), "sha256": sha256_file(deep_file)}
    assert pair.sources["wide"] == {"path": str(wide_file), "sha256": sha256_file(wide_file)}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = deep_src.eval()(x).logits
    torch.testing.assert_close(pair.run("deep", x).logits, expected)
    assert all(not p.requires_grad for p in pair.parameters())


def test_from_state_dicts_and_strictness() -> None:
    deep_src, wide_src = make_tiny(seed=7), make_tiny(seed=8)
    pair = TeacherPair.from_state_dicts(
        make_tiny(), make_tiny(), deep_src.state_dict(), wide_src.state_dict(), bn_mode="batch"
    )
    assert pair.sources == {"deep": None, "wide": None} and pair.bn_mode == "batch"
    assert torch.equal(pair.wide.classifier.weight, wide_src.classifier.weight)
    broken = deep_src.state_dict()
    del broken["head.aspp.red_bn.running_mean"]
    with pytest.raises(ValueError, match=r"head\.aspp\.red_bn\.running_mean"):
        pair.load_teacher_weights("deep", broken)


def test_teacher_type_is_deeplab() -> None:
    pair = _pair()
    assert isinstance(pair.deep, DeepLabV3Plus) and isinstance(pair.wide, DeepLabV3Plus)
