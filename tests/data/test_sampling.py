"""``ResumableRandomSampler``: a permutation per (epoch, pass), reproducible, resumable."""

from __future__ import annotations

import pytest

from mgd_lightning.data.sampling import ResumableRandomSampler


def test_each_pass_is_a_new_permutation_with_seeds() -> None:
    sampler = ResumableRandomSampler(10, seed=3)
    first, second = list(sampler), list(sampler)
    assert sorted(i for i, _ in first) == list(range(10)) == sorted(i for i, _ in second)
    assert first != second  # a new order and new seeds per pass
    assert len({seed for _, seed in first + second}) == 20
    assert len(sampler) == 10


def test_same_seed_epoch_and_pass_give_the_same_keys() -> None:
    a, b = ResumableRandomSampler(8, seed=1), ResumableRandomSampler(8, seed=1)
    assert list(a) == list(b)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    assert list(ResumableRandomSampler(8, seed=2)) != list(ResumableRandomSampler(8, seed=1))


def test_set_epoch_restarts_the_passes() -> None:
    sampler = ResumableRandomSampler(6, seed=0)
    sampler.set_epoch(1)
    epoch_one = list(sampler)
    list(sampler)  # a second pass in epoch 1
    sampler.set_epoch(1)  # same epoch again: passes continue
    third = list(sampler)
    sampler.set_epoch(2)
    sampler.set_epoch(1)  # back to epoch 1: pass 0 again
    assert list(sampler) == epoch_one
    assert third != epoch_one


def test_resume_continues_mid_pass() -> None:
    full = ResumableRandomSampler(9, seed=5)
    full.set_epoch(3)
    list(full)
    second_pass = list(full)
    resumed = ResumableRandomSampler(9, seed=5)
    resumed.resume(epoch=3, passes=1, skip=4)
    assert list(resumed) == second_pass[4:]
    assert list(resumed) == list(full)  # the next pass follows as in the uninterrupted run


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size"):
        ResumableRandomSampler(0, seed=0)
