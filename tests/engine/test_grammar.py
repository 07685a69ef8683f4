"""One option grammar for every train command; the old spellings point at the new names."""

from __future__ import annotations

import pytest

from pixlearn.cli import main

SHARED = ("--data", "--model", "--epochs", "--minutes", "--img-size", "--batch", "--lr", "--weights", "--resume", "--extend",
          "--folds", "--find-lr", "--seed", "--workers", "--out", "--format", "--progress", "--set", "--config")
TASKS = ("classify", "segment", "restore", "detect")


def _options(task: str) -> set[str]:
    from pixlearn.cli.app import build_command
    from pixlearn.cli._clickmod import click

    group = build_command()
    ctx = click.Context(group)
    train = group.get_command(ctx, "train")
    cmd = train.get_command(click.Context(train, parent=ctx), task)
    return {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}


@pytest.mark.parametrize("task", TASKS)
def test_every_train_command_takes_the_shared_options(task):
    assert set(SHARED) <= _options(task)
    assert not {"--max-minutes", "--arch", "--encoder", "--patch"} & _options(task)


@pytest.mark.parametrize(("task", "old", "new"), [
    ("restore", "--max-minutes", "--minutes"), ("segment", "--max-minutes", "--minutes"), ("classify", "--max-minutes", "--minutes"),
    ("segment", "--arch", "--model"), ("segment", "--encoder", "--backbone"), ("restore", "--patch", "--img-size"),
])
def test_old_spellings_name_the_new_option(task, old, new, capsys):
    code = main(["train", task, old, "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"no such option {old}: it is now {new}" in err and err.count("\n") == 1


def test_an_unknown_option_gets_the_closest_one(capsys):
    code = main(["train", "restore", "--minuts", "1"])
    assert code == 2 and "did you mean '--minutes'" in capsys.readouterr().err
