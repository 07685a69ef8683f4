"""A budgeted restoration run (``--minutes``, no ``--epochs``) sizes its network and epochs from measured speed.

Speed is never measured for real here: the probe's clock (``tasks.restore.budget.probe_clock``) and the
budget's clock (``engine.budget.monotonic``) are fake, so the choices do not depend on how busy this machine is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import TINY


class ReadClock:
    """A clock that moves ``dt`` seconds every time it is read (a probe reads it around its timed steps)."""

    def __init__(self, dt: float) -> None:
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def _prepared(folder: Path, **options):
    """A run prepared as ``train_restorer`` prepares a budgeted one (budget recipe applied, config resolved)."""
    from pixlearn.tasks.restore.config import RestoreConfig
    from pixlearn.tasks.restore.train import _budget_recipe, _plan, _prepare, _resolve

    flat = {"data": str(folder), "minutes": 10, "val_fraction": 0.25, **options}
    cfg = RestoreConfig.from_overrides(RestoreConfig(), **flat, epochs=10_000)
    cfg, planned = _budget_recipe(cfg, flat, ())
    assert planned
    cfg = _resolve(cfg)
    return _prepare(cfg, _plan(cfg)), flat, _prepare


@pytest.mark.parametrize("dt, small", [(200.0, True), (0.002, False)])
def test_the_default_unet_ladder_follows_the_speed(grey_folder: Path, monkeypatch, dt: float, small: bool) -> None:
    from pixlearn.tasks.restore import budget
    from pixlearn.tasks.restore.budget import UNET_LADDER, plan_run

    monkeypatch.setattr(budget, "probe_clock", ReadClock(dt))
    prep, flat, prepare = _prepared(grey_folder, patch=16)
    assert prep.cfg.model.name == "unet"  # no --model: a budgeted denoising run trains the U-Net restorer
    new, plan = plan_run(prep, prepare=prepare, options=flat, progress=False)
    assert plan["choice"]["width"] == (UNET_LADDER[0] if small else UNET_LADDER[-1])["width"]
    assert new.cfg.model.name == "unet" and new.net.pixlearn_spec.kwargs["width"] == plan["choice"]["width"]
    assert new.cfg.model.depth is None and new.cfg.model.down is None  # no dncnn options on a unet
    assert plan["text"].startswith("plan: 10 min") and ("< 3,000 wanted" in plan["text"]) == small


@pytest.mark.parametrize("dt, small", [(200.0, True), (0.002, False)])
def test_slow_steps_choose_a_smaller_network_and_fewer_patches(grey_folder: Path, monkeypatch, dt: float, small: bool) -> None:
    from pixlearn.tasks.restore import budget
    from pixlearn.tasks.restore.budget import DNCNN_LADDER, plan_run

    monkeypatch.setattr(budget, "probe_clock", ReadClock(dt))
    prep, flat, prepare = _prepared(grey_folder, patch=16, model="dncnn")  # the user's patch size is kept (and keeps the test light)
    new, plan = plan_run(prep, prepare=prepare, options=flat, progress=False)
    chosen = {k: plan["choice"][k] for k in ("depth", "width")}
    assert chosen == (DNCNN_LADDER[0] if small else DNCNN_LADDER[-1])
    assert (new.cfg.model.depth, new.cfg.model.width, new.cfg.model.down) == (chosen["depth"], chosen["width"], 1)
    assert new.net.pixlearn_spec.kwargs["depth"] == chosen["depth"]
    assert new.cfg.data.patch == 16 and new.cfg.data.patches_per_image == plan["choice"]["patches_per_image"]
    assert len(new.loaders.train_ds) == 6 * plan["choice"]["patches_per_image"]
    if small:  # 100 s a step: 10 minutes afford a handful of steps, so a patch or two per image and the cheapest network
        assert plan["choice"]["patches_per_image"] <= 2 and plan["steps"] < 10
        assert "even the cheapest" in plan["text"]
    else:  # fast steps: the largest network, and epochs of many patches (about 8 epochs fill the budget)
        assert plan["choice"]["patches_per_image"] > 1000 and 7 <= plan["epochs"] <= 9


def test_the_largest_network_that_affords_the_wanted_steps_is_chosen() -> None:
    from types import SimpleNamespace

    from pixlearn.tasks.restore.budget import DNCNN_LADDER, EPOCHS, RESERVE, candidate_cost, plan_restore_budget, wanted_steps
    from pixlearn.tasks.restore.config import RestoreConfig

    cfg = RestoreConfig.from_overrides(minutes=10, down=1, batch=16, lr=2e-3, loss="l2")
    prep = SimpleNamespace(cfg=cfg)
    # seconds per step proportional to the multiply-adds; 15 x 32 affords just the steps it wants (180 a layer), 15 x 48 not
    want = wanted_steps(DNCNN_LADDER[2])
    assert want == 2700 and wanted_steps(DNCNN_LADDER[1]) == 1800 and wanted_steps(DNCNN_LADDER[0]) == 1200
    per_unit = 600 * (1 - RESERVE) / (want + 8) / candidate_cost(DNCNN_LADDER[2], down=1)
    calls: list[dict] = []

    def probe(c):
        calls.append(dict(c))
        return candidate_cost(c, down=1) * per_unit * 0.999

    plan = plan_restore_budget(prep, candidates=DNCNN_LADDER, minutes=10, n_train=360, build=lambda c: None, probe=probe)
    assert {k: plan.choice[k] for k in ("depth", "width")} == DNCNN_LADDER[2]
    assert want <= plan.steps < want * 1.01
    assert plan.choice["patches_per_image"] == round(plan.steps * 16 / (EPOCHS * 360))
    # the cheapest is timed first; 17 x 64, far out of reach by its multiply-adds, is extrapolated from it, never timed
    assert calls[0] == DNCNN_LADDER[0] and DNCNN_LADDER[4] not in calls and DNCNN_LADDER[3] in calls
    assert [e["depth"] for e in plan.estimated] == [17]


def test_what_the_user_set_is_kept(grey_folder: Path) -> None:
    from pixlearn.tasks.restore.budget import budget_overrides, ladder
    from pixlearn.tasks.restore.config import RestoreConfig

    cfg = RestoreConfig.from_overrides(minutes=10, depth=9, lr=1e-3)
    opts = {"minutes": 10, "depth": 9, "lr": 1e-3}
    assert budget_overrides(cfg, options=opts, set=["data.batch_size=4"]) == {"down": 1, "bn": True, "patch": 48, "loss": "l2"}
    assert {c["depth"] for c in ladder(cfg, options=opts)} == {9}
    unet = RestoreConfig.from_overrides(minutes=10, model="unet", width=24)
    assert "down" not in budget_overrides(unet, options={"model": "unet", "width": 24})
    assert ladder(unet, options={"model": "unet", "width": 24}) == [{"width": 24}]
    # the network: the U-Net unless the user named one, gave a dncnn's options, a config file or weights
    plain = RestoreConfig.from_overrides(minutes=10)
    assert budget_overrides(plain, options={"minutes": 10})["model"] == "unet"
    assert "model" not in budget_overrides(plain, options={"minutes": 10}, set=["model.name=dncnn"])
    assert "model" not in budget_overrides(plain, options={"minutes": 10}, config_given=True)
    assert "model" not in budget_overrides(RestoreConfig.from_overrides(minutes=10, task="super-resolution"), options={"minutes": 10})
    espcn = RestoreConfig.from_overrides(minutes=10, model="espcn", task="super-resolution")
    assert ladder(espcn, options={"model": "espcn"}) == [{}]


def test_a_budgeted_run_prints_its_plan_records_it_and_scores_whole_held_out_images(
    grey_folder: Path, tmp_path: Path, monkeypatch, capsys,
) -> None:
    from pixlearn.data.augment import sample_seed
    from pixlearn.engine import budget as budget_mod
    from pixlearn.tasks.restore import budget
    from pixlearn.tasks.restore.data import load_clean
    from pixlearn.tasks.restore.degrade import preset, to_float
    from pixlearn.tasks.restore.metrics import classical_restore, psnr
    from pixlearn.tasks.restore.train import train_restorer
    from tests.engine.clock import FakeClock, Tick

    monkeypatch.setattr(budget, "probe_clock", ReadClock(60.0))  # 30 s a step: a 1-minute budget affords one step
    clock = FakeClock(20.0)  # and 20 s a step in training: the budget ends after at most 3 steps (3 one-step epochs)
    monkeypatch.setattr(budget_mod, "monotonic", clock)
    res = train_restorer(grey_folder, minutes=1, sigma=25, patch=16, val_fraction=0.25, val_crop=32, eval_methods=["nl_means"],
                         out=tmp_path / "planned", callbacks=[Tick(clock)])
    err = capsys.readouterr().err
    assert "plan: 1 min; measured 30 s/step at width 16" in err and "recipe: unet 16 wide, 3 levels, BN, residual" in err
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    plan = manifest["plan"]
    assert plan["choice"] == {"width": 16, "patches_per_image": 1} and plan["text"] in err and plan["recipe"] in err
    assert manifest["model"]["name"] == "unet" and manifest["model"]["kwargs"]["width"] == 16
    assert res.stop_reason == "budget" and 1 <= res.epochs_run <= 3
    # the final score is on the two held-out images, whole, not on training patches or centre crops
    m = res.metrics
    val = [Path(p) for p in manifest["data"]["splits"]["val"]]
    assert m["split"] == "val" and m["n"] == 2 and len(val) == 2
    rows = {r["image"]: r for r in m["per_image"] if r["method"] == "nl_means"}
    assert sorted(rows) == sorted(p.name for p in val)
    pipe = preset("denoise", sigma=25.0)
    for k, path in enumerate(val):  # redo non-local means on the whole 48 x 48 image with the run's noise seed
        clean = to_float(load_clean(path, "L"))
        assert clean.shape == (48, 48, 1)
        noisy = pipe(clean, seed=sample_seed(res.config.train.seed + 1, 0, k))
        ours = np.clip(classical_restore("nl_means", noisy, sigma=25.0), 0.0, 1.0)
        assert rows[path.name]["psnr"] == pytest.approx(psnr(ours, clean, data_range=1.0), abs=1e-9)
    assert set(m["methods"]) == {"model", "input", "nl_means"} and m["best_classical"]["method"] == "nl_means"
    assert np.isfinite(m["psnr"]) and np.isfinite(m["input"]["psnr"])


def test_a_run_with_epochs_is_not_planned(grey_folder: Path, tmp_path: Path, monkeypatch) -> None:
    from pixlearn.tasks.restore import budget
    from pixlearn.tasks.restore.train import train_restorer

    monkeypatch.setattr(budget, "plan_restore_budget", lambda *a, **k: pytest.fail("planned a run with --epochs"))
    res = train_restorer(grey_folder, depth=3, width=4, eval_methods=[], val_fraction=0.25, out=tmp_path / "e", **TINY)
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    assert "plan" not in manifest and manifest["model"]["kwargs"]["down"] == 1
