"""SCIM discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, saying
exactly what userdesk supports.

The published schemas are the RFC's User, enterprise extension and Group, trimmed to the
attributes userdesk stores, with the characteristics userdesk applies: emails and active
are required (a user has an address, and is active or not); a group's displayName is
unique; its members are users; the enumerations it offers are canonical values. Identity
providers, and scim2-tester, generate and check what they send from these documents.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Meta,
    Patch,
    Required,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
    User,
)
from scim2_models.resources.schema import Attribute

from userdesk.errors import NotFound
from userdesk.http.scim.protocol import (
    PREFIX,
    ScimActor,
    list_response,
    scim_error,
    scim_response,
)
from userdesk.queries.scim import MAX_COUNT

ScimUser = User[EnterpriseUser]

TIMEZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
LOCALES = ["en-US", "en-GB", "fr-FR", "de-DE", "ja-JP"]

# Published attributes: name -> sub-attributes kept (None: a simple attribute).
_CORE: dict[str, set[str] | None] = {
    "userName": None,
    "name": {"formatted", "givenName", "familyName"},
    "displayName": None,
    "nickName": None,
    "title": None,
    "userType": None,
    "locale": None,
    "timezone": None,
    "active": None,
    "password": None,
    "emails": {"value", "type", "primary"},
    "photos": {"value", "type"},
    "groups": {"value", "display", "$ref"},
}
_GROUP: dict[str, set[str] | None] = {
    "displayName": None,
    # No display: a member is a user, named by their id (and what a provider sends as its
    # display is not kept).
    "members": {"value", "$ref", "type"},
}
_ENTERPRISE: dict[str, set[str] | None] = {
    "employeeNumber": None,
    "organization": None,
    "department": None,
    "manager": {"value", "$ref"},
}
_REQUIRED = {"emails", "emails.value", "active"}
_CANONICAL = {
    "emails.type": ["work", "home", "other"],
    "photos.type": ["photo"],
    "locale": LOCALES,
    "timezone": TIMEZONES,
    "members.type": ["User"],
}
_REFERENCES = {"members.$ref": ["User"], "groups.$ref": ["Group"]}
_UNIQUE = frozenset({"displayName"})


def _trimmed(attribute: Attribute, parent: str | None = None) -> Attribute:
    path = f"{parent}.{attribute.name}" if parent else attribute.name
    update: dict[str, Any] = {}
    if path in _REQUIRED:
        update["required"] = Required.true
    if path in _CANONICAL:
        update["canonical_values"] = _CANONICAL[path]
    if path in _REFERENCES:
        update["reference_types"] = _REFERENCES[path]
    return attribute.model_copy(update=update)


def _schema(
    model: Any, kept: dict[str, set[str] | None], unique: frozenset[str] = frozenset()
) -> Schema:
    schema = model.to_schema()
    attributes = []
    for attribute in schema.attributes:
        if attribute.name not in kept:
            continue
        subs = kept[attribute.name]
        trimmed = _trimmed(attribute)
        if attribute.name in unique:
            trimmed = trimmed.model_copy(update={"uniqueness": Uniqueness.server})
        if subs is not None:
            trimmed = trimmed.model_copy(
                update={
                    "sub_attributes": [
                        _trimmed(sub, attribute.name)
                        for sub in attribute.sub_attributes or []
                        if sub.name in subs
                    ]
                }
            )
        attributes.append(trimmed)
    return schema.model_copy(update={"attributes": attributes})


SCHEMAS = {
    str(schema.id): schema
    for schema in (
        _schema(User, _CORE),
        _schema(EnterpriseUser, _ENTERPRISE),
        _schema(Group, _GROUP, _UNIQUE),
    )
}
RESOURCE_TYPES = {
    "User": ResourceType.from_resource(ScimUser),
    "Group": ResourceType.from_resource(Group),
}


def _with_meta(document: Any, resource_type: str, location: str) -> dict[str, Any]:
    dumped = document.model_copy(
        update={"meta": Meta(resource_type=resource_type, location=location)}
    ).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return dumped


def service_provider_config(base: str) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=True),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Personal access token",
                description=(
                    "A userdesk personal access token of a user holding users.provision "
                    "and users.read (and roles.manage and roles.assign for groups), sent "
                    "as 'Authorization: Bearer <token>'"
                ),
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base}/ServiceProviderConfig"),
    )


def base_url(request: Request) -> str:
    """The SCIM root as clients see it (USERDESK_PUBLIC_URL, which links in emails use)."""
    return request.app.state.settings.public_url.rstrip("/") + PREFIX


# SCIM describes itself (ServiceProviderConfig, ResourceTypes, Schemas); the OpenAPI
# document is the native REST API's.
router = APIRouter(prefix=PREFIX, tags=["scim"], include_in_schema=False)


@router.get("/ServiceProviderConfig")
async def get_service_provider_config(request: Request, _actor: ScimActor) -> JSONResponse:
    config = service_provider_config(base_url(request))
    return scim_response(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _resource_type(request: Request, name: str) -> dict[str, Any]:
    document = RESOURCE_TYPES.get(name)
    if document is None:
        raise NotFound(f"no resource type {name}")
    return _with_meta(document, "ResourceType", f"{base_url(request)}/ResourceTypes/{name}")


def _schema_document(request: Request, schema_id: str) -> dict[str, Any]:
    document = SCHEMAS.get(schema_id)
    if document is None:
        raise NotFound(f"no schema {schema_id}")
    return _with_meta(document, "Schema", f"{base_url(request)}/Schemas/{schema_id}")


@router.get("/ResourceTypes")
async def list_resource_types(request: Request, _actor: ScimActor) -> JSONResponse:
    documents = [_resource_type(request, name) for name in RESOURCE_TYPES]
    return list_response(documents, total=len(documents))


@router.get("/ResourceTypes/{name}")
async def get_resource_type(name: str, request: Request, _actor: ScimActor) -> JSONResponse:
    return scim_response(_resource_type(request, name))


@router.get("/Schemas")
async def list_schemas(request: Request, _actor: ScimActor) -> JSONResponse:
    documents = [_schema_document(request, s) for s in SCHEMAS]
    return list_response(documents, total=len(documents))


@router.get("/Schemas/{schema_id}")
async def get_schema(schema_id: str, request: Request, _actor: ScimActor) -> JSONResponse:
    return scim_response(_schema_document(request, schema_id))


@router.post("/.search")
async def search_everything(_actor: ScimActor) -> JSONResponse:
    """A search across every resource type at the root is not offered: /Users/.search is."""
    return scim_error(
        501, "search at the root is not supported; use POST /Users/.search or /Groups/.search"
    )
