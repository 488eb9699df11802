"""A prepared statement does what SQLAlchemy's execution of the same statement does: the same
rows, the same stored values, the same errors, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from hounsfield.db import engine as db
from hounsfield.db.engine import make_engine
from hounsfield.db.prepared import Prepared

META = MetaData()
ROW = Table(
    "prepared_row",
    META,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(16), nullable=False),
    Column("count", Integer, nullable=False, default=0),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("blob", LargeBinary, nullable=False),
    UniqueConstraint("name"),
)
INSERT = Prepared(ROW.insert().returning(ROW.c.pk), ("name", "count", "at", "blob"))
FIND = Prepared(select(ROW.c.pk, ROW.c.count).where(ROW.c.name == bindparam("b_name")).limit(1))
BUMP = Prepared(
    update(ROW)
    .where(ROW.c.pk == bindparam("b_pk"))
    .values(count=ROW.c.count + bindparam("b_by"), at=bindparam("b_at"))
)
AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    META.create_all(engine)
    yield engine
    engine.dispose()


def test_rows_written_and_read_match_sqlalchemy(engine: Engine) -> None:
    """Values go through the column types' own conversions (a time zone-aware timestamp,
    bytes) and read back through SQLAlchemy as they were written; a statement's own values
    (LIMIT) are sent with it."""
    with db.write(engine) as conn:
        pk = INSERT.scalar(conn, {"name": "a", "count": 2, "at": AT, "blob": b"\0\1\2"})
        INSERT.scalar(conn, {"name": "b", "count": 5, "at": AT, "blob": b""})
        assert FIND.first(conn, {"b_name": "a"}) == (pk, 2)
        assert BUMP.execute(conn, {"b_pk": pk, "b_by": 3, "b_at": AT}) == 1
    with db.read(engine) as conn:
        assert FIND.first(conn, {"b_name": "a"}) == (pk, 5)
        assert FIND.first(conn, {"b_name": "nobody"}) is None
        assert FIND.scalar(conn, {"b_name": "b"}) == pk + 1
        row = conn.execute(select(ROW).where(ROW.c.pk == pk)).one()
    assert row.at.replace(tzinfo=UTC) == AT
    assert row.blob == b"\0\1\2" and row.name == "a"


def test_it_runs_in_the_callers_transaction(engine: Engine) -> None:
    """Rolled back with the transaction it ran in; a connection not yet in one begins it."""
    with pytest.raises(RuntimeError), db.write(engine) as conn:
        INSERT.scalar(conn, {"name": "gone", "count": 1, "at": AT, "blob": b"x"})
        raise RuntimeError
    with engine.connect() as conn:
        assert FIND.first(conn, {"b_name": "gone"}) is None
        assert conn.in_transaction()
        INSERT.scalar(conn, {"name": "kept", "count": 1, "at": AT, "blob": b"x"})
        conn.commit()
    with db.read(engine) as conn:
        assert FIND.first(conn, {"b_name": "kept"}) is not None


def test_driver_errors_are_sqlalchemys(engine: Engine) -> None:
    """A unique violation is SQLAlchemy's IntegrityError, as `Connection.execute` raises it
    (the store catches that one to retry), and the connection stays usable."""
    with db.write(engine) as conn:
        INSERT.scalar(conn, {"name": "twice", "count": 1, "at": AT, "blob": b"x"})
    with pytest.raises(IntegrityError), db.write(engine) as conn:
        INSERT.scalar(conn, {"name": "twice", "count": 1, "at": AT, "blob": b"x"})
    with db.read(engine) as conn:
        assert FIND.first(conn, {"b_name": "twice"}) is not None


def test_a_result_that_needs_converting_is_refused() -> None:
    """A timestamp read back on SQLite is text that SQLAlchemy turns into a datetime: a
    prepared statement returning one would hand out the text."""
    engine = make_engine("sqlite://")
    statement = Prepared(select(ROW.c.pk, ROW.c.at).where(ROW.c.name == bindparam("b_name")))
    with engine.connect() as conn, pytest.raises(ValueError, match="at: a DATETIME"):
        statement.first(conn, {"b_name": "a"})


def test_a_value_computed_at_execution_is_refused() -> None:
    """A column default that is a function would be skipped silently: refused instead."""
    table = Table(
        "computed",
        MetaData(),
        Column("pk", Integer, primary_key=True),
        Column("at", DateTime, default=lambda: datetime.now(UTC)),
    )
    engine = make_engine("sqlite://")
    statement = Prepared(table.insert(), ("pk",))
    with engine.connect() as conn, pytest.raises(ValueError, match="computed at execution"):
        statement.execute(conn, {})
