"""Request bodies built from OpenAPI schemas: for every request schema of a few FastAPI apps written
the way FastAPI's own docs write them (nested models, enums, formats, Field constraints, model
examples, several body parameters, form and OAuth2 password bodies), the built body is one the app
accepts, checked through the app itself (ASGI, no server)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import pytest
from fastapi import Body, Depends, FastAPI, File, Form, UploadFile
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.testclient import TestClient
from pydantic import BaseModel, EmailStr, Field, HttpUrl

from harness.run import bodies, routes


class Image(BaseModel):
    url: HttpUrl
    name: str


class ModelName(StrEnum):
    alexnet = "alexnet"
    resnet = "resnet"


class Item(BaseModel):  # the tutorial's body - nested models
    name: str
    description: str | None = None
    price: float = Field(gt=0, description="The price must be greater than zero")
    tax: float | None = None
    tags: set[str] = set()
    images: list[Image] | None = None


class User(BaseModel):
    username: str
    full_name: str | None = None


class UserIn(BaseModel):  # the tutorial's extra models
    username: str = Field(min_length=3, max_length=20, pattern=r"^[a-z]+$")
    password: str = Field(min_length=8)
    email: EmailStr
    full_name: str | None = None


class Event(BaseModel):  # extra data types
    id: UUID
    start: datetime
    model: ModelName
    repeat_every: int = Field(ge=1, le=10)


class Offer(BaseModel):  # a model example (the tutorial's "declare request example data")
    name: str
    items: list[Item]
    model_config = {"json_schema_extra": {"examples": [
        {"name": "spring", "items": [{"name": "Foo", "price": 35.4}]}]}}


def _tutorial_app() -> FastAPI:
    app = FastAPI()

    @app.post("/items/")
    async def create_item(item: Item) -> Item:
        return item

    @app.put("/items/{item_id}")
    async def update_item(item_id: int, item: Item, user: User,
                          importance: Annotated[int, Body(gt=0)]) -> dict:
        return {"item_id": item_id}

    @app.post("/users/")
    async def create_user(user: UserIn) -> dict:
        return {"username": user.username}

    @app.post("/events/")
    async def create_event(event: Event) -> Event:
        return event

    @app.post("/offers/")
    async def create_offer(offer: Offer) -> Offer:
        return offer

    @app.post("/images/multiple/")
    async def create_images(images: list[Image]) -> list[Image]:
        return images

    @app.post("/index-weights/")
    async def create_index_weights(weights: dict[int, float]) -> dict[int, float]:
        return weights
    return app


def _form_app() -> FastAPI:
    app = FastAPI()

    @app.post("/login/")
    async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict:
        return {"username": username}

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
        return {"access_token": form.username, "token_type": "bearer"}

    @app.post("/files/")
    async def upload(file: Annotated[UploadFile, File()]) -> dict:
        return {"size": file.size}
    return app


def _built(app: FastAPI) -> tuple[dict, dict[tuple[str, str], bodies.Body | str]]:
    """Every operation with a request body: its built body, or the BodyError's text."""
    schema = app.openapi()
    loaded = bodies.load(schema)
    out: dict[tuple[str, str], bodies.Body | str] = {}
    for method, template, op in routes.operations(schema):
        if "requestBody" not in op:
            continue
        try:
            body = bodies.build(op, loaded, template, method)
        except bodies.BodyError as exc:
            out[(method, template)] = str(exc)
        else:
            assert body is not None
            out[(method, template)] = body
    return schema, out


def _send(client: TestClient, method: str, template: str, body: bodies.Body) -> int:
    url = template.replace("{item_id}", "1")
    answer = client.request(method, url, content=body.text, headers={"content-type": body.content_type})
    return answer.status_code


@pytest.mark.parametrize("make_app", [_tutorial_app, _form_app])
def test_every_built_body_is_accepted_by_its_app(make_app):
    app = make_app()
    _, built = _built(app)
    client = TestClient(app)
    sent = {op: _send(client, *op, body) for op, body in built.items() if isinstance(body, bodies.Body)}
    assert sent and all(code == 200 for code in sent.values()), sent
    assert len(sent) == len(built) - (make_app is _form_app)  # only the file upload could not be built


def test_examples_and_formats_and_constraints_shape_the_body():
    _, built = _built(_tutorial_app())
    offer = json.loads(built[("POST", "/offers/")].text)  # type: ignore[union-attr]
    assert offer == {"name": "spring", "items": [{"name": "Foo", "price": 35.4}]}  # the model's example
    user = json.loads(built[("POST", "/users/")].text)  # type: ignore[union-attr]
    assert set(user) == {"username", "password", "email"}  # optional full_name left to the app
    assert len(user["password"]) == 8 and "@" in user["email"]
    event = json.loads(built[("POST", "/events/")].text)  # type: ignore[union-attr]
    assert str(UUID(event["id"])) == event["id"] and event["model"] in ("alexnet", "resnet")
    assert 1 <= event["repeat_every"] <= 10
    again = _built(_tutorial_app())[1]
    assert again == built  # a fixed seed: the same bodies on every run


def test_form_bodies_are_urlencoded_and_multipart_is_skipped_with_its_reason():
    _, built = _built(_form_app())
    token = built[("POST", "/token")]
    assert isinstance(token, bodies.Body) and token.content_type == bodies.FORM
    assert "username=" in token.text and "password=" in token.text
    assert built[("POST", "/files/")] == "could not build a body: multipart/form-data is not JSON or a form"


def test_a_request_body_example_wins_and_an_override_replaces_it():
    schema = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/x": {"post": {
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            "examples": {"one": {"value": {"a": 7}}}}}},
        "responses": {"200": {"description": "ok"}}}}}}
    found, skipped = routes.discover(schema, {})
    assert not skipped and found[0].body == bodies.Body(bodies.JSON, '{"a": 7}')
    found, _ = routes.discover(schema, {}, overrides={"POST /x": '{"a": 1}'})
    assert found[0].body == bodies.Body(bodies.JSON, '{"a": 1}')
    with pytest.raises(routes.RouteError, match="no such operation"):
        routes.discover(schema, {}, overrides={"PUT /x": "{}"})
