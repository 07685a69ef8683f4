"""Honest verdicts: does a trained model beat its baselines on the held-out split? (task-free, no torch)

Every task scores its model beside baselines a user could have without training (chance and the
majority class for a classifier, the degraded input and the best classical method for a restorer,
the best classical segmenter for a segmenter). A :class:`Verdict` compares the model with each of
them on one metric of one split and says the outcome in words: by how much it wins, or, in a
warning, that it does not. Within ``margin`` of a baseline, the model "does not clearly beat" it.

A run stores ``Verdict.to_dict()`` as ``metrics.json["verdict"]`` (and in ``manifest.json``); the
run report and the training command's summary print its sentence, and ``pixlearn predict`` warns
with :func:`run_warning` when the run's model does not beat its baselines.

A k-fold run's verdict (:func:`folds_verdict`) judges the mean of the folds' held-out scores against the mean of
their baselines' scores, and says the spread: the folds' standard deviation, their range and how many folds
beat every baseline on their own.

Examples
--------
>>> v = Verdict("PSNR", "test", 28.9, {"the best classical method, non-local means": 27.1, "the noisy input": 20.2},
...             margin=0.1, n=120, unit=" dB", digits=1)
>>> v.beats
True
>>> v.sentence()
'On the test split (n=120), PSNR 28.9 dB beats the best classical method, non-local means (27.1 dB), by +1.8 dB and the noisy input (20.2 dB) by +8.7 dB.'
>>> w = Verdict("accuracy", "val", 0.31, {"the majority class (cat)": 0.34, "chance (1/4)": 0.25}, margin=0.005, digits=2)
>>> w.beats, w.outcome
(False, 'worse')
>>> print(w.sentence())  # doctest: +NORMALIZE_WHITESPACE
Warning: on the val split, accuracy 0.31 does not beat the majority class (cat) (0.34), worse by 0.03; it beats chance (1/4)
(0.25) by +0.06. The model is not useful as trained -- try a longer --minutes budget, more data or --pretrained.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pixlearn._core.errors import ConfigError

__all__ = ["Verdict", "Outcome", "folds_verdict", "run_warning", "read_run_verdict", "DEFAULT_ADVICE"]

#: The outcome against one baseline, or overall (the worst of them).
Outcome = Literal["beats", "tie", "worse"]

#: What a warning suggests when the task does not say.
DEFAULT_ADVICE = "a longer --minutes budget, more data or --pretrained"

_RANK = {"beats": 0, "tie": 1, "worse": 2}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class Verdict:
    """The model's score on one metric of one split, beside its baselines' scores on the same images.

    Parameters
    ----------
    metric : str
        The metric's name as printed (``"accuracy"``, ``"PSNR"``, ``"mean IoU"``).
    split : str
        The split every number was measured on (``"test"``, ``"val"``, ``"holdout"``).
    model_value : float
        The model's score (NaN or None: it could not be measured, which never beats anything).
    baselines : mapping of str to float
        Baseline name (as printed, e.g. ``"the majority class (cat)"``) -> its score on the same split. Entries
        without a finite value are left out; at least one must remain.
    higher_is_better : bool, default True
    margin : float, default 0.0
        A model within ``margin`` of a baseline (either side) "does not clearly beat" it (a near tie).
    n : int, optional
        How many images the split holds (printed with the split).
    unit : str, default ""
        Appended to every printed value (``" dB"``).
    digits : int, default 3
        Decimals of the printed values.
    key : str, optional
        The metric's key in ``metrics.json`` (``"accuracy"``, ``"psnr"``, ``"mean_iou"``).
    advice : str
        What a warning suggests trying.
    fold_values : sequence of float, optional
        A k-fold verdict: each fold's own score (``model_value`` and the baselines are then the folds' means; the
        sentence says "mean <metric> over K folds", the standard deviation and the range).
    folds_beating : int, optional
        A k-fold verdict: how many folds beat every baseline on their own.

    Raises
    ------
    ConfigError
        No baseline with a finite value, or a negative or non-finite margin.
    """

    metric: str
    split: str
    model_value: float | None
    baselines: Mapping[str, float | None]
    higher_is_better: bool = True
    margin: float = 0.0
    n: int | None = None
    unit: str = ""
    digits: int = 3
    key: str | None = None
    advice: str = DEFAULT_ADVICE
    fold_values: tuple[float, ...] | None = None
    folds_beating: int | None = None
    _kept: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (_finite(self.margin) and self.margin >= 0):
            raise ConfigError(f"verdict margin must be a finite number >= 0, got {self.margin!r}")
        kept = {str(k): float(v) for k, v in self.baselines.items() if _finite(v)}  # type: ignore[arg-type]
        if not kept:
            raise ConfigError(
                f"a verdict on {self.metric} ({self.split} split) needs at least one baseline with a finite score, "
                f"got {dict(self.baselines)!r}"
            )
        object.__setattr__(self, "_kept", kept)
        if self.fold_values is not None:
            values = tuple(float(v) for v in self.fold_values)
            if not values:
                raise ConfigError(f"a k-fold verdict on {self.metric} needs the folds' scores, got none")
            object.__setattr__(self, "fold_values", values)

    @property
    def spread(self) -> float | None:
        """The folds' standard deviation (population, as the k-fold summary's ``std``); None for a single run."""
        if not self.fold_values:
            return None
        mean = sum(self.fold_values) / len(self.fold_values)
        return math.sqrt(sum((v - mean) ** 2 for v in self.fold_values) / len(self.fold_values))

    # ------------------------------------------------------------ comparisons
    @property
    def measured(self) -> bool:
        """Whether the model's score is a finite number."""
        return _finite(self.model_value)

    def difference(self, baseline_value: float) -> float:
        """How much better the model is than ``baseline_value`` (positive: better; in the metric's units)."""
        if not self.measured:
            return math.nan
        d = float(self.model_value) - float(baseline_value)  # type: ignore[arg-type]
        return d if self.higher_is_better else -d

    def outcome_against(self, baseline_value: float) -> Outcome:
        """``"beats"`` (better by more than ``margin``), ``"tie"`` (within it) or ``"worse"``."""
        d = self.difference(baseline_value)
        if math.isnan(d):
            return "worse"
        if d > self.margin:
            return "beats"
        if d < -self.margin:
            return "worse"
        return "tie"

    @property
    def comparisons(self) -> list[dict[str, Any]]:
        """One ``{"name", "value", "difference", "outcome"}`` row per baseline, in the order given."""
        return [{"name": k, "value": v, "difference": self.difference(v), "outcome": self.outcome_against(v)} for k, v in self._kept.items()]

    @property
    def outcome(self) -> Outcome:
        """The worst outcome over the baselines: ``"beats"`` only when the model clearly beats every one."""
        if not self.measured:
            return "worse"
        return max((c["outcome"] for c in self.comparisons), key=_RANK.__getitem__)

    @property
    def beats(self) -> bool:
        """True when the model clearly beats every baseline (by more than ``margin``)."""
        return self.outcome == "beats"

    # ------------------------------------------------------------ words
    def _v(self, value: float) -> str:
        return f"{value:.{self.digits}f}{self.unit}"

    def _d(self, value: float) -> str:
        return f"{value:+.{self.digits}f}{self.unit}"

    def _where(self) -> str:
        return f"the {self.split} split" + (f" (n={self.n})" if self.n is not None else "")

    def _model(self) -> str:
        """The metric and the model's value: ``accuracy 0.812``, or ``mean accuracy over 5 folds 0.812 ± 0.020``."""
        value = float(self.model_value)  # type: ignore[arg-type]
        if self.fold_values is None:
            return f"{self.metric} {self._v(value)}"
        return (f"mean {self.metric} over {len(self.fold_values)} folds "
                f"{value:.{self.digits}f} ± {self.spread:.{self.digits}f}{self.unit}")

    def _folds_note(self) -> str:
        """A k-fold verdict's closing sentence: the folds' range and how many beat every baseline on their own."""
        if self.fold_values is None:
            return ""
        k = len(self.fold_values)
        text = f" The folds range from {self._v(min(self.fold_values))} to {self._v(max(self.fold_values))}"
        if self.folds_beating is not None:
            text += f"; {self.folds_beating} of {k} beat every baseline on their own"
        return text + "."

    def sentence(self) -> str:
        """The verdict in one or two sentences, naming the split of every number.

        Beating every baseline: ``"On the test split (n=120), PSNR 28.9 dB beats A (27.1 dB) by +1.8 dB and B (20.2 dB)
        by +8.7 dB."``; otherwise a ``"Warning: ..."`` that names the baselines it does not (clearly) beat, those it
        does beat, and what to try.
        """
        rows = self.comparisons
        if not self.measured:
            names = _join([f"{r['name']} ({self._v(r['value'])})" for r in rows])
            return (f"Warning: on {self._where()}, {self.metric} could not be measured (got {self.model_value!r}), so the model "
                    f"does not beat {names}. Check the run's scores before using it.")
        if self.beats:
            parts = [f"{r['name']} ({self._v(r['value'])})" + ("," if "," in r["name"] else "") + f" by {self._d(r['difference'])}" for r in rows]
            return f"On {self._where()}, {self._model()} beats {_join(parts)}.{self._folds_note()}"
        worse = [r for r in rows if r["outcome"] == "worse"]
        tie = [r for r in rows if r["outcome"] == "tie"]
        won = [r for r in rows if r["outcome"] == "beats"]
        clauses = []
        if worse:
            clauses.append("does not beat " + _join([f"{r['name']} ({self._v(r['value'])}), worse by {self._v(-r['difference'])}" for r in worse]))
        if tie:
            within = f"within the {self._v(self.margin)} margin" if self.margin > 0 else "an exact tie"
            clauses.append("does not clearly beat " + _join([f"{r['name']} ({self._v(r['value'])}, {self._d(r['difference'])}: {within})" for r in tie]))
        text = f"Warning: on {self._where()}, {self._model()} " + "; it ".join(clauses)
        if won:
            text += "; it beats " + _join([f"{r['name']} ({self._v(r['value'])}) by {self._d(r['difference'])}" for r in won])
        conclusion = "The model is not useful as trained" if worse else "The model is no clear improvement on it"
        return f"{text}.{self._folds_note()} {conclusion} -- try {self.advice}."

    # ------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored as ``metrics.json["verdict"]``: the inputs, each comparison, the outcome and the sentence."""
        return {
            "metric": self.metric,
            "key": self.key,
            "split": self.split,
            "n": self.n,
            "model_value": float(self.model_value) if self.measured else None,  # type: ignore[arg-type]
            "higher_is_better": self.higher_is_better,
            "margin": self.margin,
            "unit": self.unit,
            "digits": self.digits,
            "baselines": [{**r, "difference": None if math.isnan(r["difference"]) else r["difference"]} for r in self.comparisons],
            "beats": self.beats,
            "outcome": self.outcome,
            "sentence": self.sentence(),
            "advice": self.advice,
            "fold_values": None if self.fold_values is None else list(self.fold_values),
            "spread": self.spread,
            "folds_beating": self.folds_beating,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Rebuild a verdict from :meth:`to_dict`'s form.

        Raises
        ------
        ConfigError
            The mapping lacks the metric, split or baselines, or holds values of the wrong type.
        """
        try:
            rows = data["baselines"]
            baselines = {str(r["name"]): r["value"] for r in rows} if isinstance(rows, list) else dict(rows)
            return cls(
                metric=str(data["metric"]), split=str(data["split"]), model_value=data.get("model_value"), baselines=baselines,
                higher_is_better=bool(data.get("higher_is_better", True)), margin=float(data.get("margin", 0.0)),
                n=None if data.get("n") is None else int(data["n"]), unit=str(data.get("unit", "")), digits=int(data.get("digits", 3)),
                key=data.get("key"), advice=str(data.get("advice", DEFAULT_ADVICE)),
                fold_values=None if data.get("fold_values") is None else tuple(float(v) for v in data["fold_values"]),
                folds_beating=None if data.get("folds_beating") is None else int(data["folds_beating"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"not a verdict (metrics.json 'verdict' entry): {type(exc).__name__}: {exc}") from None


def folds_verdict(verdicts: Sequence[Mapping[str, Any] | None]) -> Verdict | None:
    """The verdict of a k-fold run from its folds' verdicts (:meth:`Verdict.to_dict`, one per fold, in fold order).

    The model's score is the mean of the folds' held-out scores, each baseline's the mean of its scores on the same
    images (a baseline named differently by the folds, e.g. another majority class per fold, is named
    ``"A / B"``); the margin, metric and split are the first fold's. The sentence gives the folds' spread (standard
    deviation and range) and how many folds beat every baseline on their own. ``n`` is kept when every fold
    was scored on as many images (the same test split), else left out. None when a fold has no verdict, a fold's
    score is missing, or the folds judged different metrics.

    Examples
    --------
    >>> folds = [Verdict("accuracy", "test", a, {"the majority class 'a'": 0.5, "chance": 0.5}, margin=0.005, n=20).to_dict()
    ...          for a in (0.70, 0.80, 0.48)]
    >>> v = folds_verdict(folds)
    >>> v.beats, round(v.model_value, 3), v.folds_beating
    (True, 0.66, 2)
    >>> print(v.sentence())  # doctest: +NORMALIZE_WHITESPACE
    On the test split (n=20), mean accuracy over 3 folds 0.660 ± 0.134 beats the majority class 'a' (0.500) by +0.160 and
    chance (0.500) by +0.160. The folds range from 0.480 to 0.800; 2 of 3 beat every baseline on their own.
    """
    if not verdicts or any(not isinstance(v, Mapping) for v in verdicts):
        return None
    try:
        folds = [Verdict.from_dict(v) for v in verdicts]  # type: ignore[arg-type]
    except ConfigError:
        return None
    first = folds[0]
    if any(f.metric != first.metric or f.split != first.split or not f.measured for f in folds):
        return None
    width = min(len(f.comparisons) for f in folds)
    baselines: dict[str, float] = {}
    for j in range(width):
        names = list(dict.fromkeys(f.comparisons[j]["name"] for f in folds))
        baselines[" / ".join(names)] = sum(f.comparisons[j]["value"] for f in folds) / len(folds)
    values = tuple(float(f.model_value) for f in folds)  # type: ignore[arg-type]
    ns = {f.n for f in folds}
    return Verdict(
        first.metric, first.split, sum(values) / len(values), baselines, higher_is_better=first.higher_is_better, margin=first.margin,
        n=first.n if len(ns) == 1 else None, unit=first.unit, digits=first.digits, key=first.key, advice=first.advice,
        fold_values=values, folds_beating=sum(f.beats for f in folds),
    )


def _metrics_path(run: str | os.PathLike[str]) -> Path | None:
    """``metrics.json`` of a run folder, or of the run a weights file (``RUN/weights/best.safetensors``) belongs to."""
    p = Path(run)
    for folder in ((p,) if p.is_dir() else (p.parent, p.parent.parent)):
        if (folder / "metrics.json").is_file():
            return folder / "metrics.json"
    return None


def read_run_verdict(run: str | os.PathLike[str]) -> Verdict | None:
    """The verdict stored in a run's ``metrics.json`` (None when the run has none or it cannot be read)."""
    path = _metrics_path(run)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = data.get("verdict") if isinstance(data, dict) else None
        return Verdict.from_dict(entry) if isinstance(entry, Mapping) else None
    except (OSError, ValueError):  # ConfigError is a ValueError: a malformed entry is no verdict
        return None


def run_warning(run: str | os.PathLike[str]) -> str | None:
    """The one-line warning for a run whose model does not beat its baselines, else None.

    It names the run and holds the verdict's sentence: the split, the metric, the model's value and each baseline's.

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> v = Verdict("accuracy", "test", 0.5, {"the majority class (a)": 0.8}, margin=0.005, n=10, key="accuracy")
    >>> _ = (run / "metrics.json").write_text(json.dumps({"verdict": v.to_dict()}))
    >>> run_warning(run).startswith(f"warning: run {run}: on the test split (n=10), accuracy 0.500 does not beat")
    True
    """
    verdict = read_run_verdict(run)
    if verdict is None or verdict.beats:
        return None
    text = verdict.sentence()
    if text.startswith("Warning: "):
        text = text[len("Warning: "):]
    return f"warning: run {run}: {text}"
