"""Engine pieces that need no training run: LR schedules with warmup, the seeded epoch sampler, run-folder helpers."""

from __future__ import annotations

import os

import pytest

from pixlearn.engine.module import lr_factor
from pixlearn.engine.runs import atomic_write_text, default_run_dir
from pixlearn.engine.sampling import EpochSampler


def test_warmup_then_cosine_to_the_floor():
    f = lr_factor("cosine", total_steps=200, steps_per_epoch=20, warmup_steps=20, min_lr_ratio=0.05)
    values = [f(s) for s in range(201)]
    assert values[0] == pytest.approx(0.01) and values[20] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(values[:20], values[1:21]))  # rising during warmup
    assert all(a >= b for a, b in zip(values[20:], values[21:]))  # then falling
    assert values[200] == pytest.approx(0.05)


def test_step_onecycle_and_constant():
    step = lr_factor("step", total_steps=100, steps_per_epoch=10, step_epochs=3, gamma=0.5)
    assert [step(s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    one = lr_factor("onecycle", total_steps=100, steps_per_epoch=10, warmup_steps=50, pct_start=0.3)
    assert one(0) == pytest.approx(0.04) and one(30) == pytest.approx(1.0) and one(100) < 1e-4
    assert lr_factor("constant", total_steps=10, steps_per_epoch=1, warmup_steps=2)(5) == 1.0


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    a = EpochSampler(20, shuffle=True, seed=1)
    orders = []
    for epoch in (0, 1, 0):
        a.set_epoch(epoch)
        orders.append(list(a))
    assert orders[0] == orders[2] != orders[1]
    assert sorted(i for i, _ in orders[0]) == list(range(20))
    assert len({s for _, s in orders[0]}) == 20  # one augmentation seed per item


def test_epoch_sampler_shards_evenly_across_ranks():
    shards = [list(EpochSampler(7, shuffle=True, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert set(i for s in shards for i, _ in s) == set(range(7))


def test_weighted_sampler_favours_rare_classes():
    weights = [1.0] * 90 + [9.0] * 10  # ten rare items, nine times the weight: half the draws
    s = EpochSampler(100, shuffle=True, seed=0, weights=weights)
    rare = 0
    for epoch in range(5):
        s.set_epoch(epoch)
        rare += sum(1 for i, _ in s if i >= 90)
    assert 180 < rare < 320


def test_run_dir_names_and_atomic_writes(tmp_path, monkeypatch):
    base = tmp_path / "runs"
    first = default_run_dir("classify", "resnet18", base=base)
    assert first == base / "classify" / "resnet18"
    first.mkdir(parents=True)
    assert default_run_dir("classify", "resnet18", base=base).name == "resnet18-2"
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP child reuses the folder rank 0 just made
    assert default_run_dir("classify", "resnet18", base=base) == first
    monkeypatch.delenv("LOCAL_RANK")
    p = atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    assert p.read_text() == "hello" and os.listdir(p.parent) == ["x.txt"]
    (tmp_path / "ref.txt").write_text("x")
    assert p.stat().st_mode == (tmp_path / "ref.txt").stat().st_mode  # same permissions as any file (umask), not 0600
