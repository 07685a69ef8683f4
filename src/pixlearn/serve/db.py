"""The service's database: one SQLAlchemy engine and the ``metadata`` every table module attaches to.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout, so
the web workers and the training processes can read while one writes. Any other SQLAlchemy URL
(``postgresql+psycopg://...``) works as given; the tables use portable types only (strings, integers,
booleans, JSON). JSON values are written as strict JSON on every backend: a NaN or infinite float
(which PostgreSQL's ``json`` type refuses) is stored as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from pixlearn._core.errors import ConfigError

__all__ = ["metadata", "make_engine", "check_database", "json_dumps", "safe_url"]

#: Every service table (models, trainings, ...) is declared on this one MetaData.
metadata = MetaData()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """Strict JSON for a JSON column: NaN and infinite floats become null.

    Examples
    --------
    >>> json_dumps({"loss": float("nan"), "acc": [0.5, float("inf")]})
    '{"loss": null, "acc": [0.5, null]}'
    """
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def safe_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs.

    Examples
    --------
    >>> safe_url("postgresql+psycopg://pixlearn:s3cret@db/pixlearn")
    'postgresql+psycopg://pixlearn:***@db/pixlearn'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the folder is created and WAL + foreign keys are switched on.

    Examples
    --------
    >>> from sqlalchemy import text
    >>> eng = make_engine("sqlite://")
    >>> with eng.connect() as c:
    ...     c.execute(text("PRAGMA foreign_keys")).scalar()
    1
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"--db {url!r} is not a SQLAlchemy URL; use e.g. sqlite:///path/pixlearn.db or postgresql+psycopg://user@host/db") from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True, json_serializer=json_dumps)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"--db {safe_url(url)!r} needs the database driver {exc.name!r}; install it "
                              "(pip install 'pixlearn[postgres]' installs psycopg: postgresql+psycopg://...)") from None
    database = parsed.database
    memory = not database or database == ":memory:"
    if memory:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool,
                               json_serializer=json_dumps)
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=json_dumps)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised through every connection
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def check_database(url: str) -> None:
    """Connect to ``url`` once; ConfigError with the driver's reason (password masked) when that fails.

    ``pixlearn serve`` calls this before it listens, so a wrong ``--db`` is one line on stderr.

    Examples
    --------
    >>> check_database("sqlite://")
    """
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise ConfigError(f"--db {safe_url(url)}: cannot connect ({reason}); check that the database server runs and "
                          "the URL's host, port, user, password and database name") from None
    finally:
        engine.dispose()
