"""A small app with a login, as real apps have: `POST /login` takes a JSON body and returns a bearer
token, `GET /me` needs that token (an OAuth2 security scheme in the schema), `POST /items` takes a
body. The login model's fields carry examples, so the audit's body is a login that succeeds."""

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, Field

app = FastAPI()
USERS = {"alice": "wonderland"}
oauth2 = OAuth2PasswordBearer(tokenUrl="login")


class Login(BaseModel):
    username: str = Field(examples=["alice"])
    password: str = Field(examples=["wonderland"])


class Item(BaseModel):
    name: str
    price: float = Field(gt=0)
    tags: list[str] = []
    description: str | None = None


@app.post("/login")
async def login(body: Login) -> dict:
    if USERS.get(body.username) != body.password:
        raise HTTPException(401, "wrong username or password")
    return {"access_token": f"token-{body.username}", "token_type": "bearer"}


@app.get("/me")
async def me(token: Annotated[str, Depends(oauth2)]) -> dict:
    if not token.startswith("token-") or token.removeprefix("token-") not in USERS:
        raise HTTPException(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
    return {"username": token.removeprefix("token-")}


@app.post("/items")
async def create_item(item: Item) -> Item:
    return item
