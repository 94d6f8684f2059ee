"""A hero registry in the style of the FastAPI tutorial's SQLModel chapter (written here, not copied):
`def` routes on SQLite through a session per request, a lifespan that creates the tables. Not
written for the harness: `bench.py audit heroes:app --app-dir tests/sqlmodel_app` must find its
routes from the schema. HEROES_DB names the SQLite file (shared by every worker).
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlmodel import Field, Session, SQLModel, create_engine, select

DB_FILE = os.environ.get("HEROES_DB") or os.path.join(tempfile.gettempdir(), "bench_heroes.db")
engine = create_engine(f"sqlite:///{DB_FILE}", connect_args={"check_same_thread": False})


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    secret_name: str
    age: int | None = Field(default=None, index=True)


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@asynccontextmanager
async def lifespan(app: FastAPI):
    SQLModel.metadata.create_all(engine)
    yield


app = FastAPI(title="Heroes", lifespan=lifespan)


@app.post("/heroes/")
def create_hero(hero: Hero, session: SessionDep) -> Hero:
    session.add(hero)
    session.commit()
    session.refresh(hero)
    return hero


@app.get("/heroes/")
def read_heroes(session: SessionDep, offset: int = 0,
                limit: Annotated[int, Query(le=100)] = 100) -> list[Hero]:
    return list(session.exec(select(Hero).offset(offset).limit(limit)).all())


@app.get("/heroes/{hero_id}")
def read_hero(hero_id: int, session: SessionDep) -> Hero:
    hero = session.get(Hero, hero_id)
    if hero is None:
        raise HTTPException(status_code=404, detail="Hero not found")
    return hero
