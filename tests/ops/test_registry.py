"""The op registry: documented option ranges declared once, checked before any work, reported by describe_options."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import numpy as np
import pytest

import pixlearn
from pixlearn.ops import get_op, list_ops
from pixlearn.ops._registry import _OPS, Kernel, Range, plain_text, register_op
from pixlearn.ops.recipe import Recipe

NUMERIC_OPTIONS = [(s.name, o["name"]) for s in list_ops() for o in s.describe_options() if o["range"] is not None]


def test_every_numeric_option_has_a_finite_documented_range() -> None:
    assert len(NUMERIC_OPTIONS) > 60
    for spec in list_ops():
        for o in spec.describe_options():
            numeric = any(t in o["type"] for t in ("int", "float"))
            assert (o["range"] is not None) == numeric, (spec.name, o)
            if numeric:
                assert math.isfinite(o["min"]) and math.isfinite(o["max"]) and o["min"] <= o["max"]
                default = o["default"]
                if default is not None:  # every default lies inside its own range
                    spec.validate({o["name"]: default})


def test_an_op_with_a_number_option_and_no_range_cannot_register() -> None:
    def unbounded(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
        return image

    with pytest.raises(pixlearn.ConfigError, match=r"option 'sigma' is a number without a documented range"):
        register_op("test_unbounded", category="test")(unbounded)
    assert "test_unbounded" not in _OPS


@pytest.mark.parametrize(("op", "option"), NUMERIC_OPTIONS)
@pytest.mark.parametrize("value", ["1e308", "-1e308", "inf", "nan", "1e400", str(10**20), "99999999999999999999999"])
def test_extreme_values_are_refused_naming_the_option_and_the_range(op: str, option: str, value: str) -> None:
    spec = get_op(op)
    with pytest.raises(pixlearn.ConfigError) as info:
        spec.validate({option: value}, where="here")
    message = str(info.value)
    assert message.startswith(f"here: op '{op}' option '{option}'"), message
    rng = spec.ranges[option].describe()
    assert rng in message or "is invalid" in message  # out of range: names the range; not a number: the type


def test_the_issue_examples_are_config_errors_before_any_work() -> None:
    cases = [("gaussian", {"sigma": "1000000"}, r"'sigma': 1000000.0 is out of range; expected float in \(0, 100\]"),
             ("sharpen", {"sigma": "inf"}, "'sigma': inf is not a finite number"),
             ("sharpen", {"sigma": "1e308"}, r"expected float in \(0, 100\]; use a value in that range, e.g. sigma=1"),
             ("erode", {"ksize": "99999999999999999999999"}, r"'ksize': 99999999999999999999999 is out of range"),
             ("close", {"iterations": "1000000000"}, r"'iterations': 1000000000 is out of range; expected int in \[1, 100\]"),
             ("clahe", {"tile": "1000000000,1"}, r"'tile': \(1000000000, 1\) is out of range; expected tuple\[int, int\], "
                                                 r"each in \[1, 256\]; use a value in that range, e.g. tile=8,8"),
             ("dominant_colors", {"k": "1e400"}, "'k': '1e400' is invalid"),
             ("median", {"ksize": "4"}, "'ksize': 4 is not odd")]
    for op, options, match in cases:
        with pytest.raises(pixlearn.ConfigError, match=match):
            get_op(op).validate(options)


def test_in_range_values_are_coerced_from_strings() -> None:
    assert get_op("gaussian").validate({"sigma": "100", "ksize": "0"}) == {"sigma": 100.0, "ksize": 0}
    assert get_op("clahe").validate({"tile": "256,1"}) == {"tile": (256, 1)}
    assert get_op("canny").validate({"low": None, "high": None}) == {"low": None, "high": None}
    assert get_op("rotate").validate({"angle": "-360"}) == {"angle": -360.0}


def test_calling_an_op_spec_checks_ranges_without_coercion() -> None:
    img = np.zeros((8, 8), np.uint8)
    with pytest.raises(pixlearn.ConfigError, match="'sigma': 1e\\+308 is out of range"):
        get_op("gaussian")(img, sigma=1e308)
    with pytest.raises(pixlearn.ConfigError, match="'sigma': nan is not a finite number"):
        get_op("sharpen")(img, sigma=float("nan"))
    with pytest.raises(pixlearn.ConfigError, match="'tile'"):
        get_op("clahe")(img, tile=(10**9, 1))


def test_kernel_sizes_are_bounded_by_the_image_at_call_time() -> None:
    img = np.zeros((8, 5), np.uint8)  # 2 * max(8, 5) + 1 = 17
    for op in ("median", "erode", "gaussian", "adaptive_threshold"):
        with pytest.raises(pixlearn.ConfigError, match=rf"op '{op}' option 'ksize': 19 is too large for this 8x5 "
                                                       r"\(height x width\) image: at most 17 .*use ksize=17 or less"):
            get_op(op)(img, ksize=19)
        assert get_op(op)(img, ksize=17).shape == img.shape
    with pytest.raises(pixlearn.ConfigError, match="'min_distance': 18 is too large"):
        get_op("watershed")(img, min_distance=18)


def test_defaults_are_allowed_on_any_image() -> None:
    tiny = np.full((2, 2, 3), 90, np.uint8)  # 2 * 2 + 1 = 5 < bilateral's 9, adaptive_threshold's 11, nl_means' 21
    for op in ("bilateral", "adaptive_threshold", "nl_means", "watershed"):
        assert get_op(op)(tiny).shape[:2] == (2, 2)
    assert get_op("bilateral")(tiny, ksize=9).shape == tiny.shape  # the default value, given explicitly


def test_recipes_check_the_image_bound_before_the_step_runs(monkeypatch) -> None:
    recipe = Recipe.from_dict({"steps": ["grayscale", {"median": {"ksize": 21}}]})  # in range: validation passes
    calls = []
    monkeypatch.setitem(_OPS, "median", dataclasses.replace(get_op("median"), func=lambda *a, **k: calls.append(1)))
    with pytest.raises(pixlearn.ConfigError, match="'ksize': 21 is too large for this 8x8"):
        recipe(np.zeros((8, 8, 3), np.uint8))
    assert not calls


def test_recipe_with_an_out_of_range_option_is_refused_at_load_naming_the_step() -> None:
    with pytest.raises(pixlearn.ConfigError, match=r"^r.yaml: step 2: op 'gaussian' option 'sigma': inf is not a "
                                                   r"finite number; expected float in \(0, 100\]"):
        Recipe.from_yaml("steps:\n  - grayscale\n  - gaussian: {sigma: .inf}\n", source="r.yaml")
    with pytest.raises(pixlearn.ConfigError, match=r"^recipe: step 1: op 'erode' option 'iterations': 1000000000 is out"):
        Recipe.from_dict({"steps": [{"op": "erode", "iterations": 10**9}]})


def test_describe_options_reports_type_default_and_range() -> None:
    opts = {o["name"]: o for o in get_op("gaussian").describe_options()}
    assert opts["sigma"] == {"name": "sigma", "type": "float", "default": 1.0, "range": "(0, 100]", "min": 0, "max": 100}
    assert opts["ksize"]["range"] == "0 or odd in [1, 255], at most 2*max(H, W)+1"
    flip = get_op("flip").describe_options()[0]
    assert flip["range"] is None and flip["min"] is None and "'horizontal'" in flip["type"]


def test_range_metadata() -> None:
    assert Range(1, 5).problem(3) is None and Range(1, 5).problem(6) == "is out of range"
    assert Range(0, 1, low_open=True).problem(0) == "is out of range"
    assert Range(0, 1).problem(float("-inf")) == "is not a finite number"
    assert Kernel(3, 9).problem(4) == "is not odd" and Kernel(3, 9, also=(0,)).problem(0) is None
    assert Range(0, 255).problem((1, 300)) == "is out of range" and Range(0, 255).problem(None) is None
    assert Range(0, 255).problem(True) is None  # bools are not numbers here (pydantic types them)
    with pytest.raises(pixlearn.ConfigError, match="finite bounds"):
        Range(0, math.inf)
    k = Kernel(1, 255)
    assert k.image_limit((8, 5, 3), 3) == 17 and k.image_limit((2, 2), 9) == 9 and Range(0, 1).image_limit((8, 8), 0) is None


def test_annotated_range_inside_a_union_or_tuple_is_found() -> None:
    def op_with_nested(
        image: np.ndarray,
        *,
        a: Annotated[int, Range(1, 3)] | None = None,
        b: tuple[Annotated[int, Range(0, 9)], Annotated[int, Range(0, 9)]] = (1, 2),
    ) -> np.ndarray:
        return image

    try:
        register_op("test_nested", category="test")(op_with_nested)
        spec = get_op("test_nested")
        assert spec.validate({"a": "2", "b": "3,4"}) == {"a": 2, "b": (3, 4)}
        with pytest.raises(pixlearn.ConfigError, match="'b': \\(3, 40\\) is out of range"):
            spec.validate({"b": "3,40"})
        assert [o["type"] for o in spec.describe_options()] == ["int | None", "tuple[int, int]"]
    finally:
        _OPS.pop("test_nested", None)


def test_summaries_are_plain_text() -> None:
    assert get_op("canny").summary.startswith("Canny edge map (cv2.Canny):")
    assert get_op("otsu").summary.endswith("(see otsu_threshold).")
    for spec in list_ops():
        assert spec.summary and "``" not in spec.summary and ":func:" not in spec.summary, spec.name
    assert plain_text("see :func:`~pixlearn.ops.get_op` and `Canny`_") == "see pixlearn.ops.get_op and Canny"


def test_repeated_morphology_is_bounded_as_the_one_element_it_amounts_to() -> None:
    """OpenCV turns ksize=255, iterations=100 into one 25401x25401 element (645 MB, allocated whole)."""
    from pixlearn.ops.morphology import MAX_REACH, erode

    with pytest.raises(pixlearn.ConfigError, match=r"^op 'close': ksize=255 with iterations=100 amounts to one "
                                                   r"25401x25401 element .* over the limit of 1025; lower ksize"):
        get_op("close").validate({"ksize": "255", "iterations": "100"})  # at recipe load / before reading the image
    assert get_op("close").validate({"ksize": "255", "iterations": "4"}) == {"ksize": 255, "iterations": 4}
    assert MAX_REACH == 1025
    img = np.zeros((64, 64), np.uint8)  # 2 * 64 + 1 = 129
    with pytest.raises(pixlearn.ConfigError, match=r"over the limit of 129 for this 64x64 image"):
        get_op("dilate")(img, ksize=65, iterations=3)
    with pytest.raises(pixlearn.ConfigError, match=r"amounts to one 25401x25401 element"):
        erode(img, ksize=255, iterations=100)  # the plain function checks it too, before OpenCV allocates
    assert erode(np.zeros((2, 2), np.uint8)).shape == (2, 2)  # defaults work on any image


def test_bilateral_diameter_derived_from_sigma_space_is_capped() -> None:
    from pixlearn.ops.denoise import bilateral

    with pytest.raises(pixlearn.ConfigError, match=r"ksize=0 derives the diameter .* = 225 from sigma_space=75.0, "
                                                   r"over the limit of 63; give ksize"):
        get_op("bilateral").validate({"ksize": 0})
    assert get_op("bilateral").validate({"ksize": 0, "sigma_space": 20}) == {"ksize": 0, "sigma_space": 20.0}
    with pytest.raises(pixlearn.ConfigError, match="derives the diameter"):
        bilateral(np.zeros((8, 8), np.uint8), ksize=0, sigma_space=100.0)
