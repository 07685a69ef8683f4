"""The one loader of user YAML/JSON: refuses aliases, deep nesting, too many values and big input, without building them."""

from __future__ import annotations

import os
import threading

import pytest

from pixlearn._core.errors import AnnotationError, ConfigError
from pixlearn._core.safe_yaml import load_json, load_yaml, load_yaml_file, read_text_limited


def billion_laughs(levels: int = 9) -> str:
    """The classic: 9 levels of 9 aliases each = 9**9 (387 million) strings from a few hundred bytes."""
    names = "abcdefghijklmnop"[:levels]
    lines = [f"{names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    lines.append(f"steps: *{names[-1]}")
    return "\n".join(lines) + "\n"


def test_plain_yaml_loads():
    assert load_yaml("steps: [gaussian: {sigma: 1.5}, canny]\n", what="recipe") == {
        "steps": [{"gaussian": {"sigma": 1.5}}, "canny"]}
    assert load_yaml("", what="recipe") is None
    assert load_yaml(b"\xef\xbb\xbfa: 1", what="recipe") == {"a": 1}


def test_aliases_are_refused_by_default_naming_the_input():
    with pytest.raises(ConfigError, match=r"^recipe: uses the YAML anchor &a \(line 1.*write the values out"):
        load_yaml(billion_laughs(), what="recipe")


def test_billion_laughs_with_aliases_allowed_stops_at_the_expanded_node_count(monkeypatch):
    """With aliases allowed, each alias counts as the values it repeats: refused after ~max_nodes, never built."""
    import yaml

    built = []
    monkeypatch.setattr(yaml, "load", lambda *a, **k: built.append(1))  # the value must never be constructed
    with pytest.raises(ConfigError, match=r"holds more than 100,000 values \(aliases expanded\)"):
        load_yaml(billion_laughs(), what="config", max_nodes=100_000, allow_aliases=True)
    assert built == []


def test_aliases_within_the_limits_load_when_allowed():
    doc = "base: &b {lr: 0.1, epochs: 3}\ntrain: *b\nmore: {<<: *b, lr: 0.2}\n"
    assert load_yaml(doc, what="config", allow_aliases=True) == {
        "base": {"lr": 0.1, "epochs": 3}, "train": {"lr": 0.1, "epochs": 3}, "more": {"lr": 0.2, "epochs": 3}}
    # depth counts the expanded alias too
    with pytest.raises(ConfigError, match="nests more than 4 levels deep .*alias \\*b"):
        load_yaml("b: &b [[1]]\nc: [*b]\n", what="config", allow_aliases=True, max_depth=4)


def test_a_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match=r"alias \*a .*refers to no complete anchor"):
        load_yaml("a: &a [1, *a]\n", what="config", allow_aliases=True)


@pytest.mark.parametrize("doc", [
    "steps:\n- " + "[" * 5000 + "]" * 5000,       # flow style, 5,000 deep (libyaml's own cap is met first)
    "- " * 5000 + "x",                              # block style
    "steps:\n" + "".join(" " * i + "a:\n" for i in range(200)) + " " * 200 + "b",
])
def test_deep_nesting_is_refused(doc):
    with pytest.raises(ConfigError, match=r"^recipe: nests more than 16 levels deep"):
        load_yaml(doc, what="recipe", max_depth=16)


def test_size_and_node_limits():
    with pytest.raises(ConfigError, match=r"^recipe: 2 KB, over the limit of 1 KB"):
        load_yaml("a: " + "x" * 2045, what="recipe", max_bytes=1024)
    with pytest.raises(ConfigError, match="holds more than 10 values"):
        load_yaml("[" + ", ".join(["1"] * 20) + "]", what="recipe", max_nodes=10)


@pytest.mark.parametrize("doc, match", [
    ("a: [1", "line 2: not valid YAML"),           # libyaml reports the end of the input
    ("a: 1\n---\nb: 2", "more than one YAML document"),
    ("a: " + "9" * 5000, "a value cannot be read"),          # int() refuses > 4,300 digits: a ValueError, not YAMLError
    ("a: 2020-13-45", "a value cannot be read"),             # an impossible timestamp
    ("? [1, 2]\n: x", "not valid YAML|unhashable"),           # a list as a mapping key
])
def test_every_bad_document_is_a_config_error(doc, match):
    with pytest.raises(ConfigError, match=match):
        load_yaml(doc, what="recipe")


def test_the_error_class_can_be_chosen():
    with pytest.raises(AnnotationError, match="data.yaml: uses the YAML anchor"):
        load_yaml("a: &x 1\nb: *x", what="data.yaml", error=AnnotationError)


def test_files_are_read_bounded_and_only_if_regular(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("steps: [canny]\n")
    assert load_yaml_file(p) == {"steps": ["canny"]}
    p.write_bytes(b"a: 1\n" * 1000)
    with pytest.raises(ConfigError, match=r"r.yaml: .*over the limit of 1 KB"):
        load_yaml_file(p, max_bytes=1024)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_text_limited(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_text_limited(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        read_text_limited("a\x00b.yaml")
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_text_limited(p)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "r.yaml"
    os.mkfifo(fifo)
    out: list[BaseException] = []
    t = threading.Thread(target=lambda: out.append(pytest.raises(ConfigError, load_yaml_file, fifo).value), daemon=True)
    t.start()
    t.join(30)  # returns at once when fixed; a blocking open() would hang here with no writer
    assert not t.is_alive(), "opening a FIFO blocked"
    assert "not a regular file" in str(out[0])


def test_json_limits():
    assert load_json(b'{"features": ["colors"]}', what="the JSON body") == {"features": ["colors"]}
    with pytest.raises(ConfigError, match="^the JSON body: nests more than 64 levels deep"):
        load_json("[" * 100 + "]" * 100, what="the JSON body")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(b"{", what="the JSON body")
    with pytest.raises(ConfigError, match="over the limit of 1 KB"):
        load_json(b"[" + b"1," * 1000 + b"1]", what="the JSON body", max_bytes=1024)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(b'{"n": ' + b"9" * 5000 + b"}", what="the JSON body")


def test_json_nested_past_the_recursion_limit_is_a_config_error_in_a_worker_thread():
    errors: list[BaseException] = []

    def work() -> None:
        try:
            load_json("[" * 100_000 + "]" * 100_000, what="the JSON body")
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert isinstance(errors[0], ConfigError) and "nests more than 64 levels deep" in str(errors[0])


# ---------------------------------------------------------------- the call sites: run configs, data.yaml
def _config_laughs() -> str:
    """A billion laughs inside a valid-looking run config (anchors are allowed in configs, so it must be counted)."""
    levels = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [{', '.join(['*' + prev] * 9)}]")
    return "train:\n  epochs: 1\nnotes: [" + ", ".join(levels) + "]\n"


@pytest.mark.parametrize("text, match", [
    (_config_laughs(), r"holds more than 100,000 values \(aliases expanded\)"),
    ("train:\n  epochs: " + "[" * 5000 + "]" * 5000 + "\n", r"nests more than 32 levels deep"),
])
def test_run_config_files_are_parsed_within_limits(tmp_path, capsys, text, match):
    from pixlearn.cli import main
    from pixlearn.tasks.classify.config import ClassifyConfig

    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        ClassifyConfig.load(path)
    code = main(["train", "classify", "--config", str(path), "--data", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    import re

    assert re.search(match, err), err


def test_config_anchors_within_the_limits_still_work(tmp_path):
    from pixlearn.tasks.classify.config import ClassifyConfig

    path = tmp_path / "run.yaml"
    path.write_text("optim: &o {lr: 0.01}\ntrain: {epochs: 2}\n")
    assert ClassifyConfig.load(path).optim.lr == 0.01


def test_set_values_are_parsed_within_limits():
    from pixlearn.tasks.classify.config import ClassifyConfig

    assert ClassifyConfig().with_set(["train.epochs=3"]).train.epochs == 3
    with pytest.raises(ConfigError, match=r"^--set train\.epochs: uses the YAML anchor &a"):
        ClassifyConfig().with_set(["train.epochs=&a 3"])
    with pytest.raises(ConfigError, match=r"^--set train\.epochs: nests more than 16 levels deep"):
        ClassifyConfig().with_set(["train.epochs=" + "[" * 5000 + "]" * 5000])


def test_a_yolo_data_yaml_with_aliases_is_an_annotation_error(tmp_path):
    from pixlearn.data.formats import yolo

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("names: &n [cat, dog]\ntrain: images/train\nval: *n\n")
    with pytest.raises(AnnotationError, match=r"data\.yaml: uses the YAML anchor &n"):
        yolo.read(tmp_path)
