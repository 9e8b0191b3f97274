"""The password policy and its live check; an admin's password reset and unlock; E2EE keys."""

from __future__ import annotations

from fastapi import APIRouter

from userdesk.actions import e2e as e2e_actions
from userdesk.actions import passwords as password_actions
from userdesk.actions import throttle
from userdesk.actions.inputs import AdminPasswordReset, E2EKeysInput, PasswordPolicyCheck
from userdesk.actions.outbox import queued_email_warning
from userdesk.errors import Unauthenticated
from userdesk.http.deps import ActorDep, DatabaseDep, OptionalActorDep
from userdesk.http.problems import problem_responses
from userdesk.queries import e2e as e2e_queries
from userdesk.queries import users as user_queries
from userdesk.views import (
    E2EKeysView,
    LockoutView,
    PasswordCheckView,
    PasswordPolicyView,
    PasswordRuleView,
    PublicKeyView,
    UserView,
)

router = APIRouter(prefix="/api/v1", tags=["credentials"], responses=problem_responses())


@router.get("/password-policy", response_model=PasswordPolicyView)
async def password_policy(database: DatabaseDep) -> PasswordPolicyView:
    """The workspace's password policy (public: the join and reset pages show it)."""
    async with database.reader() as session:
        policy = await password_actions.policy_of(session)
    return PasswordPolicyView.of(policy)


@router.post("/password-policy/check", response_model=PasswordCheckView)
async def check_password(
    body: PasswordPolicyCheck, actor: OptionalActorDep, database: DatabaseDep
) -> PasswordCheckView:
    """Judge a candidate password against every rule of the policy, for live feedback;
    nothing is stored or logged. Give `username` and `email`, or the `user_id` of an
    existing user (needs sign-in and the right to see that user), for the personal rule."""
    async with database.reader() as session:
        username, email = body.username, body.email
        if body.user_id is not None:
            if actor is None:
                raise Unauthenticated("sign in to check a password for an existing user")
            user = await user_queries.get_user(session, viewer=actor, user_id=body.user_id)
            username, email = user.username, user.email
        policy = await password_actions.policy_of(session)
    rules = policy.check(body.password, username=username, email=email)
    return PasswordCheckView(
        ok=all(r.passed for r in rules),
        rules=[PasswordRuleView(rule=r.rule, passed=r.passed, message=r.message) for r in rules],
    )


@router.post("/users/{user_id}/password/reset", response_model=UserView)
async def reset_password(
    user_id: str, body: AdminPasswordReset, actor: ActorDep, database: DatabaseDep
) -> UserView:
    """The Users page's "Reset password" (users.reset_credentials). `mode` "random": a
    generated password is emailed and must be changed at the next sign-in; "manual": the
    given `password` (policy-checked), with `require_password_change`. Every session and
    token of the user ends."""
    async with database.transaction() as session:
        user = await password_actions.reset_password(
            session, actor=actor, user_id=user_id, data=body
        )
        view = UserView.of(user)
        view.warning = await queued_email_warning(session)
        return view


@router.get("/users/{user_id}/lockout", response_model=LockoutView)
async def lockout(user_id: str, actor: ActorDep, database: DatabaseDep) -> LockoutView:
    """Whether failed sign-ins have locked the user out, and until when."""
    async with database.reader() as session:
        user = await user_queries.get_user(session, viewer=actor, user_id=user_id)
        status = await throttle.status(session, viewer=actor, user=user)
    return LockoutView(**status)


@router.post("/users/{user_id}/unlock", response_model=LockoutView)
async def unlock(user_id: str, actor: ActorDep, database: DatabaseDep) -> LockoutView:
    """End a lockout and forget the failed sign-ins (users.reset_credentials)."""
    async with database.transaction() as session:
        await throttle.unlock(session, actor=actor, user_id=user_id)
    return LockoutView(locked=False, locked_until=None, failures=0)


@router.get("/me/e2e-keys", response_model=E2EKeysView)
async def my_keys(actor: ActorDep, database: DatabaseDep) -> E2EKeysView:
    """One's stored end-to-end encryption keys (404 when none)."""
    async with database.reader() as session:
        return E2EKeysView.of(await e2e_queries.own_keys(session, viewer=actor))


@router.put("/me/e2e-keys", response_model=E2EKeysView)
async def set_my_keys(body: E2EKeysInput, actor: ActorDep, database: DatabaseDep) -> E2EKeysView:
    """Store one's public key and encrypted private key (opaque to the server)."""
    async with database.transaction() as session:
        await e2e_actions.set_own_keys(session, actor=actor, data=body)
        return E2EKeysView.of(await e2e_queries.own_keys(session, viewer=actor))


@router.get("/users/{user_id}/e2e-keys/public", response_model=PublicKeyView)
async def public_key(user_id: str, actor: ActorDep, database: DatabaseDep) -> PublicKeyView:
    """A user's public key, for encrypting to them."""
    async with database.reader() as session:
        keys = await e2e_queries.public_key(session, viewer=actor, user_id=user_id)
    return PublicKeyView(user_id=user_id, public_key=keys.public_key, updated_at=keys.updated_at)


@router.post("/users/{user_id}/e2e-keys/reset", response_model=UserView)
async def reset_keys(user_id: str, actor: ActorDep, database: DatabaseDep) -> UserView:
    """The Users page's "Reset E2EE key": delete the keys and sign the user out everywhere.
    Only for users who have keys (409 otherwise)."""
    async with database.transaction() as session:
        user = await e2e_actions.reset_keys(session, actor=actor, user_id=user_id)
        view = UserView.of(user)
        view.warning = await queued_email_warning(session)
        return view
