"""Profile pictures: initials by default, a URL, or an upload checked and resized."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.conftest import Account, Directory


def _picture(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


async def test_initials_are_the_default_and_escape_the_name(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("ada", name="<Ada> Lovelace")
    response = await client.get(f"/api/v1/users/{user['id']}/avatar", headers=owner.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert ">AL</text>" in response.text
    assert "<Ada>" not in response.text


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
async def test_upload_is_cropped_resized_and_served_as_png(
    client: httpx.AsyncClient, owner: Account, directory: Directory, fmt: str
) -> None:
    user = await directory.create("pic")
    path = f"/api/v1/users/{user['id']}/avatar"
    response = await client.put(
        path,
        content=_picture(fmt),
        headers={**owner.headers, "content-type": f"image/{fmt.lower()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["avatar"] == {"kind": "upload", "url": None}
    served = await client.get(path, headers=owner.headers)
    assert served.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(served.content)) as image:
        assert (image.format, image.size) == ("PNG", (256, 256))
    etag = served.headers["etag"]
    cached = await client.get(path, headers={**owner.headers, "if-none-match": etag})
    assert cached.status_code == 304
    audit = (
        await client.get(
            "/api/v1/audit",
            params={"target": user["id"], "action": "user.updated"},
            headers=owner.headers,
        )
    ).json()["items"]
    assert audit[0]["changes"]["avatar_kind"] == {"before": "initials", "after": "upload"}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "required"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "image_unreadable"),
        (b"GIF89a" + b"\x00" * 40, "image_unreadable"),
        (_picture("PNG")[:200], "image_unreadable"),
        (_picture("BMP"), "image_format"),
        (_picture("PNG", (8000, 6000)), "image_dimensions"),
    ],
)
async def test_bad_uploads_are_422_and_change_nothing(
    client: httpx.AsyncClient, owner: Account, directory: Directory, payload: bytes, code: str
) -> None:
    user = await directory.create("bad-pic")
    path = f"/api/v1/users/{user['id']}/avatar"
    response = await client.put(path, content=payload, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "field": "image",
        "code": code,
        "message": response.json()["errors"][0]["message"],
    }
    again = await client.get(f"/api/v1/users/{user['id']}", headers=owner.headers)
    assert again.json()["avatar"]["kind"] == "initials"


async def test_url_avatar_redirects_and_removing_returns_to_initials(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    user = await directory.create("linky")
    path = f"/api/v1/users/{user['id']}/avatar"
    await client.put(path, content=_picture("PNG"), headers=owner.headers)
    await client.patch(
        f"/api/v1/users/{user['id']}",
        json={"avatar_url": "https://cdn.example.com/l.png"},
        headers=owner.headers,
    )
    redirect = await client.get(path, headers=owner.headers)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://cdn.example.com/l.png"
    removed = await client.delete(path, headers=owner.headers)
    assert removed.json()["avatar"] == {"kind": "initials", "url": None}
    assert (await client.get(path, headers=owner.headers)).headers[
        "content-type"
    ] == "image/svg+xml"


async def test_users_set_their_own_picture_but_not_someone_elses(
    client: httpx.AsyncClient, owner: Account, directory: Directory
) -> None:
    member = await directory.account("self-pic", roles=["user"])
    own = await client.put(
        f"/api/v1/users/{member.id}/avatar", content=_picture("PNG"), headers=member.headers
    )
    assert own.status_code == 200, own.text
    other = await client.put(
        f"/api/v1/users/{owner.id}/avatar", content=_picture("PNG"), headers=member.headers
    )
    assert other.status_code == 403
    guest = await directory.account("guest-pic", roles=["guest"])
    refused = await client.put(
        f"/api/v1/users/{guest.id}/avatar", content=_picture("PNG"), headers=guest.headers
    )
    assert refused.status_code == 403
    assert refused.json()["permission"] == "profile.edit"


async def test_a_refused_upload_says_nothing_about_whether_the_user_exists(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    member = await directory.account("nosy", roles=["user"])
    for target in ("no-such-user", (await directory.create("other"))["id"]):
        response = await client.put(
            f"/api/v1/users/{target}/avatar", content=_picture("PNG"), headers=member.headers
        )
        assert response.status_code == 403, response.text
        assert response.json()["permission"] == "users.edit"
