"""An app in the shape of the full-stack FastAPI template (written here, not copied): `def` routes on
SQLModel with a session per request, the engine's own QueuePool set to 2 connections and no
overflow, and a query that holds its connection 50 ms (SQLite, with a `sleep_ms` SQL function
registered on each connection). Not written for the harness: `bench.py audit items:app --app-dir
tests/pool_app` must find, from the pool's events alone, that the pool is the limit of /items/slow,
and give /ping (no database) no pool verdict. POOL_APP_DB names the SQLite file.
"""

import os
import tempfile
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import event, text
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

DB_FILE = os.environ.get("POOL_APP_DB") or os.path.join(tempfile.gettempdir(), "bench_pool_app.db")
engine = create_engine(f"sqlite:///{DB_FILE}", poolclass=QueuePool, pool_size=2, max_overflow=0,
                       connect_args={"check_same_thread": False})


@event.listens_for(engine, "connect")
def _sleep_function(dbapi_connection, _record) -> None:
    # SQLite has no pg_sleep: a query that takes its time on the connection, as a slow SELECT would.
    dbapi_connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or 0)


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
app = FastAPI(title="Items")


@app.get("/items/slow")
def slow_items(session: SessionDep) -> dict:
    held = session.exec(text("SELECT sleep_ms(50)")).scalar_one()  # type: ignore[call-overload]
    return {"held": held}


@app.get("/ping")
def ping() -> dict:
    return {"ok": True}
