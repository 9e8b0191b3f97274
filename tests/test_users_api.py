"""The users API: create, read, update, and the errors a client sees."""

from __future__ import annotations

import httpx

from tests.conftest import Account, Directory


async def test_create_user_returns_the_user_pending_with_the_default_role(
    client: httpx.AsyncClient, owner: Account
) -> None:
    response = await client.post(
        "/api/v1/users",
        json={"name": "Zoë Ødegård", "username": "zoe.o", "email": "Zoe@Example.COM",
              "timezone": "Europe/Oslo", "given_name": "Zoë", "family_name": "Ødegård"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["location"] == f"/api/v1/users/{user['id']}"
    assert user["status"] == "pending"
    assert user["roles"] == ["user"]
    assert user["email"] == "Zoe@example.com"
    assert user["type"] == "human"
    assert user["created_by"] == owner.id
    assert user["last_login_at"] is None
    fetched = await client.get(f"/api/v1/users/{user['id']}", headers=owner.headers)
    assert fetched.json() == user
