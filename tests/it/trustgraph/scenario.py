"""iamd driven by TrustGraph 2.11.1's published code, as a TrustGraph deployment drives it.

Run by tests/trustgraph.rs with the Python of scripts/trustgraph.sh:

    scenario.py --mode http|kafka --url URL --secret S [--brokers B] --expired-jwt T

Every operation TrustGraph's ``IamClient`` offers (and ``mint-token`` through its generic
``request``), in TrustGraph's bootstrap order; the gateway's ``IamAuth.authenticate``
accepting iamd's API keys and JWTs and refusing revoked, expired and disabled ones; and
``authorise`` compared with upstream's own policy function for every operation of the
gateway's registry, every role, own and other workspace. Exits 0 and prints one summary
line when every check holds; a failed check raises with what differed.
"""

import argparse
import asyncio
import datetime
import json
import sys

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from trustgraph.base.iam_client import IamClient
from trustgraph.base.request_response_client import RequestResponseClient
from trustgraph.base.request_response_spec import _make_impl_wrapper
from trustgraph.gateway import registry
from trustgraph.gateway.auth import IamAuth
from trustgraph.iam.service.iam import IamService
from trustgraph.schema import (
    ApiKeyInput, IamRequest, IamResponse, UserInput, WorkspaceInput,
    iam_request_queue, iam_response_queue,
)

import transport

CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if VERBOSE:
        print(f"check: {what}", file=sys.stderr, flush=True)
    if not cond:
        raise AssertionError(what)


VERBOSE = False


async def refused(coro, error_type):
    """The call fails with TrustGraph's RuntimeError carrying `error_type`."""
    try:
        await coro
    except RuntimeError as e:
        check(str(e).startswith(error_type + ":"), f"expected {error_type}, got {e}")
        return
    check(False, f"expected {error_type}, the call succeeded")


async def open_client(backend):
    rr = await RequestResponseClient.create(
        backend=backend,
        request_topic=iam_request_queue,
        response_topic=iam_response_queue,
        request_schema=IamRequest,
        response_schema=IamResponse,
    )
    return _make_impl_wrapper(rr, IamClient)


def bearer(token):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return make_mocked_request("GET", "/api/v1/flow", headers=headers)


async def gateway_accepts(auth, token):
    return await auth.authenticate(bearer(token))


async def gateway_refuses(auth, token, what):
    try:
        await auth.authenticate(bearer(token))
    except web.HTTPUnauthorized:
        check(True, what)
        return
    check(False, f"the gateway accepted {what}")


async def fresh_gateway(backend):
    """A gateway's IamAuth as it is at start: signing key fetched, caches empty."""
    auth = IamAuth(backend)
    await auth.start(max_retries=3, retry_delay=0.5)
    check(auth._signing_public_pem, "the gateway fetched iamd's signing key")
    return auth


async def lifecycle(iam, backend, expired_jwt):
    # TrustGraph's bootstrapper creates workspace `default` before an operator bootstraps.
    check(await iam.bootstrap_status() is True, "bootstrap is available on a fresh iamd")
    ws = await iam.create_workspace(WorkspaceInput(id="default", name="Default"))
    check(ws.id == "default" and ws.enabled, f"create-workspace default: {ws}")
    check(await iam.bootstrap_status() is True, "workspace default alone does not bootstrap")
    admin_id, admin_key = await iam.bootstrap()
    check(admin_id and admin_key.startswith("tg_"), "bootstrap returns the admin and its key")
    check(await iam.bootstrap_status() is False, "bootstrap-status agrees after bootstrap")
    check(await iam.bootstrap() == ("", ""), "a second bootstrap is a no-op with empty fields")
    check(await iam.resolve_api_key(admin_key) == (admin_id, "default", ["admin"]),
          "the bootstrap key resolves with its default workspace")

    pem = await iam.get_signing_key_public()
    check(pem.startswith("-----BEGIN PUBLIC KEY-----"), "get-signing-key-public is a PEM")

    # Workspaces.
    acme = await iam.create_workspace(WorkspaceInput(id="acme", name="Acme"))
    check(acme.id == "acme" and acme.name == "Acme", f"create-workspace acme: {acme}")
    await iam.create_workspace(WorkspaceInput(id="globex", name="Globex"))
    ids = sorted(w.id for w in await iam.list_workspaces())
    check(ids == ["acme", "default", "globex"], f"list-workspaces: {ids}")
    check((await iam.get_workspace("acme")).name == "Acme", "get-workspace")
    updated = await iam.update_workspace(WorkspaceInput(id="acme", name="Acme Corp"))
    check(updated.name == "Acme Corp" and updated.enabled, f"update-workspace: {updated}")

    # Users, through TrustGraph's codec (roles [], enabled true, must_change_password false).
    pw = "correct horse battery"
    alice = await iam.create_user("acme", UserInput(username="alice", password=pw, roles=["writer"]))
    check(alice.default_workspace == "acme", f"a user record reads with its workspace: {alice}")
    check(alice.roles == ["writer"] and alice.enabled, f"create-user: {alice}")
    bob = await iam.create_user("acme", UserInput(username="bob", password=pw, roles=["reader"]))
    await refused(iam.create_user("globex", UserInput(username="ALICE", password=pw, roles=["reader"])),
                  "duplicate")
    users = {u.username: u for u in await iam.list_users("acme")}
    check(set(users) == {"alice", "bob"} and users["bob"].default_workspace == "acme",
          f"list-users: {users}")
    check((await iam.get_user("acme", alice.id)).username == "alice", "get-user")
    await refused(iam.get_user("globex", alice.id), "operation-not-permitted")
    # What the gateway forwards from a body without a workspace: upstream's system-level forms.
    everyone = await iam.request(IamRequest(operation="list-users"))
    check(everyone.error is None and {"admin", "alice", "bob"} <= {u.username for u in everyone.users},
          f"list-users without a workspace lists every user: {everyone.error}")
    found = await iam.request(IamRequest(operation="get-user", user_id=alice.id))
    check(found.error is None and found.user.default_workspace == "acme", "get-user without a workspace")

    renamed = await iam.update_user("acme", alice.id, UserInput(name="Alice B"))
    check(renamed.name == "Alice B" and renamed.roles == ["writer"],
          f"update-user with TrustGraph's empty roles keeps the roles: {renamed}")
    await iam.disable_user("acme", bob.id)
    kept = await iam.update_user("acme", bob.id, UserInput(email="bob@example.com"))
    check(not kept.enabled and kept.email == "bob@example.com",
          f"update-user with TrustGraph's enabled=true does not re-enable: {kept}")
    await iam.enable_user("acme", bob.id)
    check((await iam.get_user("acme", bob.id)).enabled, "enable-user")

    # API keys and the gateway.
    key, record = await iam.create_api_key("acme", ApiKeyInput(user_id=alice.id, name="laptop"))
    check(key.startswith("tg_") and record.prefix == key[:4], f"create-api-key: {record}")
    check(await iam.resolve_api_key(key) == (alice.id, "acme", ["writer"]), "resolve-api-key")
    keys = await iam.list_api_keys("acme", alice.id)
    check([k.id for k in keys] == [record.id], f"list-api-keys: {keys}")

    auth = await fresh_gateway(backend)
    identity = await gateway_accepts(auth, key)
    check((identity.handle, identity.default_workspace, identity.source) == (alice.id, "acme", "api-key"),
          f"the gateway accepts iamd's API key: {identity}")
    jwt, expires = await iam.login("alice", pw)
    check(jwt.count(".") == 2 and expires, "login returns a JWT and its expiry")
    identity = await gateway_accepts(auth, jwt)
    check((identity.handle, identity.default_workspace, identity.source) == (alice.id, "acme", "jwt"),
          f"the gateway accepts iamd's JWT: {identity}")
    await auth.authorise(identity, "graph:write", {"workspace": "acme"}, {})
    try:
        await auth.authorise(identity, "graph:write", {"workspace": "globex"}, {})
        check(False, "a writer is refused in another workspace")
    except web.HTTPForbidden:
        check(True, "a writer is refused in another workspace")
    await gateway_refuses(auth, None, "no bearer (authenticate-anonymous)")
    await gateway_refuses(auth, expired_jwt, "an expired JWT")
    await gateway_refuses(auth, "tg_" + "A" * 32, "an unknown API key")
    await refused(iam.authenticate_anonymous(request_id="r-1", client_ip="203.0.113.9"), "auth-failed")
    await refused(iam.login("alice", "wrong password!"), "auth-failed")

    me = await iam.whoami(alice.id)
    check(me.id == alice.id and me.default_workspace == "acme", f"whoami: {me}")
    check([w.id for w in await iam.list_my_workspaces(alice.id)] == ["acme"], "list-my-workspaces")

    # Passwords.
    new_pw = "another correct horse"
    await iam.change_password(alice.id, pw, new_pw)
    await refused(iam.login("alice", pw), "auth-failed")
    await iam.login("alice", new_pw)
    temporary = await iam.reset_password("acme", alice.id)
    check(len(temporary) >= 12, "reset-password returns a temporary password")
    jwt, _ = await iam.login("alice", temporary)
    check((await gateway_accepts(auth, jwt)).default_workspace == "acme", "login with the temporary password")
    check((await iam.get_user("acme", alice.id)).must_change_password, "reset sets must_change_password")
    kept = await iam.update_user("acme", alice.id, UserInput(name="Alice C"))
    check(kept.must_change_password,
          f"update-user with TrustGraph's must_change_password=false does not clear it: {kept}")

    # Revocation, expiry and disabling, each seen by a gateway with empty caches.
    await iam.revoke_api_key("acme", record.id)
    await refused(iam.resolve_api_key(key), "auth-failed")
    await gateway_refuses(await fresh_gateway(backend), key, "a revoked API key")
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=6)
    short, _ = await iam.create_api_key("acme", ApiKeyInput(user_id=alice.id, name="short", expires=soon.isoformat()))
    await gateway_accepts(await fresh_gateway(backend), short)
    left = (soon - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    await asyncio.sleep(max(0.0, left) + 0.5)
    await gateway_refuses(await fresh_gateway(backend), short, "an expired API key")
    bob_key, _ = await iam.create_api_key("acme", ApiKeyInput(user_id=bob.id, name="ci"))
    bob_jwt, _ = await iam.login("bob", pw)
    bob_identity = await gateway_accepts(auth, bob_jwt)
    await iam.disable_user("acme", bob.id)
    await gateway_refuses(await fresh_gateway(backend), bob_key, "a disabled user's API key")
    # The gateway verifies JWTs locally; iamd's authorise denies a disabled user everything.
    try:
        await (await fresh_gateway(backend)).authorise(bob_identity, "graph:read", {"workspace": "acme"}, {})
        check(False, "a disabled user is denied")
    except web.HTTPForbidden:
        check(True, "a disabled user is denied")
    await iam.delete_user("acme", bob.id)
    await refused(iam.get_user("acme", bob.id), "not-found")

    # mint-token, which IamClient has no helper for: its generic request().
    resp = await iam.request(IamRequest(
        operation="mint-token", workspace="globex", user_id=alice.id,
        user_context_json=json.dumps({"tenant": "t-7", "groups": ["a"]}),
    ))
    check(resp.error is None and resp.jwt, f"mint-token: {resp.error}")
    minted = await gateway_accepts(auth, resp.jwt)
    check((minted.handle, minted.default_workspace, minted.user_context)
          == (alice.id, "globex", {"tenant": "t-7", "groups": ["a"]}),
          f"the gateway reads a minted token: {minted}")
    resp = await iam.request(IamRequest(operation="mint-token", workspace="globex", user_id=alice.id))
    check(resp.error is not None and resp.error.type == "invalid-argument", "mint-token needs user_context_json")
    resp = await iam.request(IamRequest(operation="mint-token", workspace="nowhere", user_id=alice.id,
                                        user_context_json="{}"))
    check(resp.error is not None and resp.error.type == "not-found", "mint-token into a missing workspace")

    # Rotation: a running 2.11 gateway keeps the key it fetched at start (it ignores kid).
    await iam.rotate_signing_key()
    jwt, _ = await iam.login("alice", temporary)
    await gateway_refuses(auth, jwt, "a token signed after rotation, by a gateway not restarted")
    check((await gateway_accepts(await fresh_gateway(backend), jwt)).handle == alice.id,
          "a restarted gateway accepts tokens signed after rotation")

    await iam.disable_workspace("globex")
    check(not (await iam.get_workspace("globex")).enabled, "disable-workspace")
    return admin_id


def upstream_row(user_id, workspace, role):
    """A user row as upstream's IAM service reads it from Cassandra."""
    return (user_id, workspace, role, role, "", "", {role}, True, False, None)


async def policy(iam):
    """authorise and authorise-many against upstream's `_decide`, for every registry
    operation with a capability, every role, own and other workspace."""
    people = {}
    for role in ("reader", "writer", "admin"):
        user = await iam.create_user("acme", UserInput(username=f"pol-{role}", password="correct horse battery",
                                                        roles=[role]))
        people[role] = user
    compared = 0
    for role, user in people.items():
        identity = type("Identity", (), {"default_workspace": "acme", "handle": user.id})()
        cases = []
        for op in registry.all_operations():
            if op.capability in (registry.PUBLIC, registry.AUTHENTICATED):
                continue
            for target in ("acme", "globex"):
                ctx = registry.RequestContext(
                    body={"workspace": target}, match_info={"workspace": target, "flow": "default"},
                    identity=identity,
                )
                resource, parameters = op.extract_resource(ctx), op.extract_parameters(ctx)
                want, _ = IamService._decide(None, upstream_row(user.id, "acme", role),
                                             op.capability, resource, parameters)
                cases.append((op, target, resource, parameters, want))
        # One authorise per case, all in flight at once (the client correlates by id).
        answers = await asyncio.gather(*(
            iam.authorise(user.id, op.capability, resource, parameters)
            for op, _, resource, parameters, _ in cases
        ))
        for (op, target, _, _, want), (allow, ttl) in zip(cases, answers):
            check((allow, ttl) == (want, 60),
                  f"authorise {role} {op.name} in {target}: iamd {allow}/{ttl}, upstream {want}/60")
            compared += 1
        checks = [{"capability": op.capability, "resource": r, "parameters": p} for op, _, r, p, _ in cases]
        got = await iam.authorise_many(user.id, checks)
        check(got == [(want, 60) for *_, want in cases], f"authorise-many for {role} differs from upstream")
    return compared


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["http", "kafka"], required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--secret", default="")
    parser.add_argument("--brokers", default="")
    parser.add_argument("--expired-jwt", required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    backend = transport.backend(args.mode, args.url, args.secret, args.brokers)
    iam = await open_client(backend)
    try:
        await lifecycle(iam, backend, args.expired_jwt)
        compared = await policy(iam)
    finally:
        await iam.close()
        await backend.close()
    print(f"trustgraph {args.mode}: {CHECKS} checks passed, {compared} authorise decisions equal upstream's")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
