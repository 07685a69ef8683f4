"""The task-free verdict: higher / lower is better, margins and near ties, the sentences, storage and the run warning."""

from __future__ import annotations

import json
import math

import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.engine.verdict import Verdict, read_run_verdict, run_warning


def test_higher_is_better_beats_every_baseline_and_says_by_how_much():
    v = Verdict("PSNR", "test", 28.9, {"the best classical method, non-local means": 27.1, "the noisy input": 20.2},
                margin=0.1, n=120, unit=" dB", digits=1)
    assert v.beats and v.outcome == "beats"
    assert v.sentence() == ("On the test split (n=120), PSNR 28.9 dB beats the best classical method, non-local means (27.1 dB), "
                            "by +1.8 dB and the noisy input (20.2 dB) by +8.7 dB.")
    assert [round(c["difference"], 6) for c in v.comparisons] == [1.8, 8.7]


def test_one_baseline_not_beaten_makes_a_warning_that_names_both():
    v = Verdict("accuracy", "val", 0.31, {"the majority class 'cat'": 0.34, "chance": 0.25}, margin=0.005, digits=2)
    assert not v.beats and v.outcome == "worse"
    s = v.sentence()
    assert s.startswith("Warning: on the val split, accuracy 0.31 does not beat the majority class 'cat' (0.34), worse by 0.03")
    assert "it beats chance (0.25) by +0.06" in s
    assert "not useful as trained -- try" in s and "--minutes" in s


def test_lower_is_better_flips_the_sign():
    better = Verdict("error", "test", 0.10, {"baseline": 0.20}, higher_is_better=False, margin=0.01)
    worse = Verdict("error", "test", 0.30, {"baseline": 0.20}, higher_is_better=False, margin=0.01)
    assert better.beats and better.comparisons[0]["difference"] == pytest.approx(0.10)
    assert not worse.beats and worse.outcome == "worse" and worse.comparisons[0]["difference"] == pytest.approx(-0.10)
    assert "worse by 0.100" in worse.sentence()


@pytest.mark.parametrize(("model", "outcome"), [
    (27.25, "beats"),   # +0.15 dB: more than the 0.1 dB margin
    (27.15, "tie"),     # +0.05 dB: within it
    (27.10, "tie"),     # exactly equal
    (27.05, "tie"),     # -0.05 dB: within it on the other side
    (26.95, "worse"),   # -0.15 dB
])
def test_the_margin_separates_win_near_tie_and_loss(model, outcome):
    v = Verdict("PSNR", "test", model, {"non-local means": 27.1}, margin=0.1, unit=" dB", digits=2)
    assert v.outcome == outcome
    assert v.beats is (outcome == "beats")
    if outcome == "tie":
        assert "does not clearly beat non-local means (27.10 dB" in v.sentence()
        assert "within the 0.10 dB margin" in v.sentence()
        assert v.sentence().startswith("Warning: ")


def test_zero_margin_exact_tie_is_not_a_win():
    v = Verdict("accuracy", "test", 0.5, {"chance": 0.5})
    assert v.outcome == "tie" and not v.beats and "an exact tie" in v.sentence()


def test_a_tie_with_one_and_a_loss_to_another_is_a_loss():
    v = Verdict("accuracy", "test", 0.50, {"a": 0.502, "b": 0.60}, margin=0.005)
    assert v.outcome == "worse"
    s = v.sentence()
    assert "does not beat b (0.600), worse by 0.100" in s and "does not clearly beat a (0.502" in s


def test_unmeasured_model_never_beats():
    for value in (math.nan, None, math.inf):
        v = Verdict("accuracy", "test", value, {"chance": 0.5})
        assert not v.beats and "could not be measured" in v.sentence()
        assert v.to_dict()["model_value"] is None


def test_baselines_without_a_value_are_left_out_and_none_at_all_is_an_error():
    v = Verdict("accuracy", "test", 0.9, {"chance": 0.5, "majority": None, "broken": math.nan})
    assert [c["name"] for c in v.comparisons] == ["chance"]
    with pytest.raises(ConfigError, match="at least one baseline"):
        Verdict("accuracy", "test", 0.9, {"majority": None})
    with pytest.raises(ConfigError, match="margin"):
        Verdict("accuracy", "test", 0.9, {"chance": 0.5}, margin=-0.1)


def test_to_dict_is_json_and_round_trips():
    v = Verdict("mean IoU", "val", 0.62, {"the best classical segmenter, otsu": 0.70}, margin=0.005, n=6, key="mean_iou")
    d = json.loads(json.dumps(v.to_dict()))
    assert d["beats"] is False and d["outcome"] == "worse" and d["split"] == "val" and d["key"] == "mean_iou"
    assert d["baselines"][0] == {"name": "the best classical segmenter, otsu", "value": 0.70,
                                 "difference": pytest.approx(-0.08), "outcome": "worse"}
    back = Verdict.from_dict(d)
    assert back.sentence() == d["sentence"] == v.sentence()
    with pytest.raises(ConfigError, match="not a verdict"):
        Verdict.from_dict({"metric": "accuracy"})


def test_run_warning_names_the_run_metric_and_both_values(tmp_path):
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    bad = Verdict("accuracy", "test", 0.4, {"the majority class 'a'": 0.8}, margin=0.005, n=10, key="accuracy")
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.4, "verdict": bad.to_dict()}))
    line = run_warning(run)
    assert line is not None and line.startswith(f"warning: run {run}: on the test split (n=10), accuracy 0.400 does not beat")
    assert "the majority class 'a' (0.800)" in line and "\n" not in line
    # a weights file inside the run finds the same verdict
    weights = run / "weights" / "best.safetensors"
    assert run_warning(weights) == f"warning: run {weights}: " + line[len(f"warning: run {run}: "):]
    good = Verdict("accuracy", "test", 0.95, {"the majority class 'a'": 0.8}, margin=0.005)
    (run / "metrics.json").write_text(json.dumps({"verdict": good.to_dict()}))
    assert run_warning(run) is None and read_run_verdict(run).beats


def test_run_warning_is_silent_without_a_readable_verdict(tmp_path):
    assert run_warning(tmp_path) is None  # no metrics.json
    (tmp_path / "metrics.json").write_text("{not json")
    assert run_warning(tmp_path) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))  # a run from before verdicts
    assert run_warning(tmp_path) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"verdict": {"metric": "accuracy"}}))  # malformed
    assert run_warning(tmp_path) is None


def test_report_opens_with_the_verdict(tmp_path):
    from pixlearn.engine.report import write_run_report

    v = Verdict("accuracy", "test", 0.4, {"the majority class 'a'": 0.8, "chance": 0.5}, margin=0.005, n=10)
    page = write_run_report(tmp_path / "r.html", title="t", scores=[{"accuracy": 0.4, "n": 10, "split": "test"}],
                            verdict=v.to_dict()).read_text()
    assert "class='verdict warning'" in page and "does not beat the majority class &#x27;a&#x27; (0.800)" in page
    assert "Against the baselines (test split, 10 images)" in page
    assert page.index("verdict warning") < page.index("<h2>Scores</h2>")
    plain = write_run_report(tmp_path / "p.html", title="t", scores=[{"accuracy": 0.4, "n": 10, "split": "test"}]).read_text()
    assert "class='verdict" not in plain and "Against the baselines" not in plain


def test_a_k_fold_verdict_judges_the_mean_and_says_the_spread():
    from pixlearn.engine.verdict import folds_verdict

    folds = [Verdict("accuracy", "val", a, {f"the majority class '{c}'": m, "chance": 0.5}, margin=0.005, n=n).to_dict()
             for a, c, m, n in ((0.56, "cat", 0.6, 10), (0.62, "dog", 0.55, 11))]
    v = folds_verdict(folds)
    assert v.model_value == pytest.approx(0.59) and v.spread == pytest.approx(0.03) and v.folds_beating == 1
    assert v.n is None  # the folds' own val parts differ in size
    assert [c["name"] for c in v.comparisons] == ["the majority class 'cat' / the majority class 'dog'", "chance"]
    assert v.comparisons[0]["value"] == pytest.approx(0.575)
    assert v.outcome == "beats"  # +0.015 over the majority classes' mean, beyond the 0.005 margin
    s = v.sentence()
    assert s.startswith("On the val split, mean accuracy over 2 folds 0.590 ± 0.030 beats")
    assert s.endswith("The folds range from 0.560 to 0.620; 1 of 2 beat every baseline on their own.")
    assert Verdict.from_dict(v.to_dict()).sentence() == s  # stored and read back the same

    worse = folds_verdict([Verdict("PSNR", "test", x, {"the noisy input": 20.0}, margin=0.1, n=4, unit=" dB", digits=1).to_dict()
                           for x in (19.0, 20.5)])
    assert not worse.beats and worse.sentence().startswith("Warning: on the test split (n=4), mean PSNR over 2 folds 19.8 ± 0.8 dB "
                                                           "does not beat the noisy input (20.0 dB)")
    assert "1 of 2 beat every baseline on their own." in worse.sentence()
    assert folds_verdict([folds[0], None]) is None and folds_verdict([]) is None  # a fold without a verdict: no summary verdict
