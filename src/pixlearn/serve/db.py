"""The service's database: one SQLAlchemy engine and the ``metadata`` every table module attaches to.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout, so
the web workers and the training processes can read while one writes. Any other SQLAlchemy URL
(``postgresql+psycopg://...``) works as given.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from pixlearn._core.errors import ConfigError

__all__ = ["metadata", "make_engine"]

#: Every service table (models, trainings, ...) is declared on this one MetaData.
metadata = MetaData()


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
            return create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"--db {url!r} needs the database driver {exc.name!r}; install it (pip install 'pixlearn[postgres]')") from None
    database = parsed.database
    memory = not database or database == ":memory:"
    if memory:
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

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
