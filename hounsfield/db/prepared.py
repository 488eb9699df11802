"""Statements run on the driver's cursor, compiled once per dialect: the ingest's hot path.

SQLAlchemy's execution of a cached statement (execution context, events, result object)
took about ten times the driver's own time for the single-row statements every stored
object runs, and a fifth of a busy server's interpreter time went there (bench/RESULTS.md,
"Notes"). A `Prepared` statement is compiled by SQLAlchemy once per dialect, its values go
through the column types' own bind processors, and it runs inside the caller's transaction
on the same connection; driver errors become SQLAlchemy's, as `Connection.execute` raises
them. Only statements whose results need no type processing (integers, text) qualify: one
returning a column whose type converts what the driver gives (a timestamp on SQLite) is
refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Form:
    """A statement's text for one dialect, and how to turn values into its parameters."""

    sql: str
    names: tuple[str, ...]  # every bind parameter, in the order of a positional dialect
    positional: bool
    fixed: Mapping[str, Any]  # the values of parameters the statement itself carries
    processors: tuple[tuple[int, Processor], ...]  # (position in `names`, processor)

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        fixed = self.fixed
        out = [values[n] if n in values else fixed[n] for n in self.names]
        for at, processor in self.processors:
            if out[at] is not None:
                out[at] = processor(out[at])
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))


class Prepared:
    """A Core statement compiled once per dialect and run on the connection's cursor.

    `keys` names the values an INSERT gets (its columns); other statements name theirs by
    their bind parameters."""

    def __init__(self, statement: Executable, keys: Sequence[str] = ()) -> None:
        self.statement, self.keys = statement, tuple(keys)
        self._forms: dict[Dialect, _Form] = {}

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = self._compile(dialect)
        return form

    def _compile(self, dialect: Dialect) -> _Form:
        compiled = self.statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(self.keys) or None
        )
        computed = [*compiled.insert_prefetch, *compiled.update_prefetch]
        if computed:  # column defaults SQLAlchemy computes as it executes
            keys = ", ".join(str(c.key) for c in computed)
            raise ValueError(f"{keys}: a value computed at execution cannot be prepared")
        returned = [*getattr(self.statement, "selected_columns", ()), *(compiled.returning or ())]
        for column in returned:  # rows come back as the driver gives them
            impl = column.type.dialect_impl(dialect)
            if impl.result_processor(dialect, None) is not None:
                raise ValueError(f"{column.name}: a {column.type} result needs SQLAlchemy")
        binds = {name: bind for bind, name in compiled.bind_names.items()}  # as in the text
        names = tuple(compiled.positiontup if dialect.positional else binds)
        fixed: dict[str, Any] = {}
        processors: list[tuple[int, Processor]] = []
        for at, name in enumerate(names):
            bind = binds[name]
            if bind.callable is not None:
                raise ValueError(f"{name}: a value computed at execution cannot be prepared")
            if not bind.required:
                fixed[name] = bind.effective_value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((at, processor))
        return _Form(str(compiled), names, dialect.positional, fixed, tuple(processors))

    def _run(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """A cursor that has run the statement in `conn`'s transaction (begun if it was not)."""
        if not conn.in_transaction():
            conn.begin()
        form = self._form(conn.dialect)
        arguments = form.arguments(values)
        driver = conn.connection.dbapi_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            cursor.execute(form.sql, arguments)
        except Exception as exc:
            cursor.close()
            raise _wrapped(conn, form.sql, arguments, exc, driver, cursor) from exc
        return cursor

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run the statement; the number of rows it changed."""
        cursor = self._run(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns, or None."""
        cursor = self._run(conn, values)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row the statement returns."""
        cursor = self._run(conn, values)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def scalar(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, values)
        return None if row is None else row[0]


def _wrapped(
    conn: Connection, sql: str, arguments: Any, exc: Exception, driver: Any, cursor: Any
) -> Exception:
    """A driver error as SQLAlchemy raises it (IntegrityError, OperationalError, ...); a lost
    connection is invalidated, so that the pool does not hand it out again."""
    dialect = conn.dialect
    if not isinstance(exc, dialect.loaded_dbapi.Error):
        return exc
    disconnect = dialect.is_disconnect(exc, driver, cursor)
    if disconnect:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql,
        arguments,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=disconnect,
        dialect=dialect,
    )
