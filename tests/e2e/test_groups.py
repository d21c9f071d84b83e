"""Groups over REST and sockets: roles, settings, members (add, remove, leave, limit), ownership
transfers under concurrency, join requests, history from the join seq, a removed member gets
nothing new (socket and /sync), deletion, account deletion, and messaging's membership queries."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from src.common.queries.messaging import ConversationMemberIds, ConversationPeerIds, IsConversationMember
from src.infra.context import AppContext
from tests.e2e.harness import ApiProcess
from tests.e2e.messaging_support import User, device, h, history, ok, open_direct, problem, send, uid, users


async def group(http: httpx.AsyncClient, owner: User, members: list[User], **extra: Any) -> str:
    body = {"name": "team", "member_ids": [uid(m) for m in members], **extra}
    return str(ok(await http.post("/groups", json=body, headers=h(owner)), 201)["id"])


async def roles(http: httpx.AsyncClient, viewer: User, gid: str) -> dict[str, str]:
    page = ok(await http.get(f"/groups/{gid}/members", params={"limit": 100}, headers=h(viewer)))
    return {m["user_id"]: m["role"] for m in page["items"]}


async def set_role(http: httpx.AsyncClient, actor: User, gid: str, target: User, role: str) -> httpx.Response:
    return await http.patch(f"/groups/{gid}/members/{uid(target)}", json={"role": role}, headers=h(actor))


async def remove(http: httpx.AsyncClient, actor: User, gid: str, target: User) -> httpx.Response:
    return await http.delete(f"/groups/{gid}/members/{uid(target)}", headers=h(actor))


async def test_admins_edit_the_group_and_members_list_pages_with_roles(http: httpx.AsyncClient) -> None:
    owner, a, b, stranger = await users(http, 4)
    gid = await group(http, owner, [a, b])
    problem(await http.patch(f"/groups/{gid}", json={"name": "x"}, headers=h(a)), 403, "not_admin")
    problem(await http.patch(f"/groups/{gid}", json={"name": "x"}, headers=h(stranger)), 404, "group_not_found")
    problem(await set_role(http, a, gid, b, "admin"), 403, "not_owner")
    assert ok(await set_role(http, owner, gid, a, "admin"))["role"] == "admin"

    patched = ok(await http.patch(f"/groups/{gid}", json={"name": "renamed", "description": "d" * 1000,
                                                          "join_policy": "request"}, headers=h(a)))
    assert (patched["name"], patched["join_policy"], patched["member_count"]) == ("renamed", "request", 3)
    problem(await http.patch(f"/groups/{gid}", json={"name": ""}, headers=h(a)), 400, "validation_failed")
    problem(await http.patch(f"/groups/{gid}", json={"description": "d" * 1001}, headers=h(a)), 400,
            "validation_failed")
    problem(await http.patch(f"/groups/{gid}", json={"join_policy": "open"}, headers=h(a)), 400,
            "validation_failed")
    seen = ok(await http.get(f"/groups/{gid}", headers=h(b)))
    assert (seen["name"], seen["join_policy"]) == ("renamed", "request")

    first = ok(await http.get(f"/groups/{gid}/members", params={"limit": 2}, headers=h(b)))
    rest = ok(await http.get(f"/groups/{gid}/members", params={"cursor": first["next_cursor"]}, headers=h(b)))
    listed = first["items"] + rest["items"]
    assert rest["next_cursor"] is None
    assert len(first["items"]) == 2 and len(listed) == 3  # created together: one join time, then by id
    assert sorted((m["user_id"], m["role"]) for m in listed) == sorted([(uid(owner), "owner"), (uid(a), "admin"),
                                                                        (uid(b), "member")])
    assert all(m["joined_at"] for m in listed)
    problem(await http.get(f"/groups/{gid}/members", headers=h(stranger)), 404, "group_not_found")


async def test_admins_add_only_people_they_may_message(http: httpx.AsyncClient) -> None:
    owner, a, c, blocker, private, stranger = await users(http, 6)
    gid = await group(http, owner, [a])
    problem(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(c)]}, headers=h(a)), 403, "not_admin")
    problem(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(c)]}, headers=h(stranger)), 404,
            "group_not_found")
    ok(await http.put(f"/users/{uid(owner)}/block", headers=h(blocker)))
    ok(await http.patch("/privacy/settings", json={"who_can_message": "nobody"}, headers=h(private)))
    for target, code in ((blocker, "blocked"), (private, "not_allowed")):
        problem(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(c), uid(target)]},
                                headers=h(owner)), 403, code)
    problem(await http.post(f"/groups/{gid}/members", json={"user_ids": [str(uuid.uuid4())]}, headers=h(owner)),
            400, "unknown_users")
    assert set(await roles(http, owner, gid)) == {uid(owner), uid(a)}  # nothing of a refused call

    added = ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(c), uid(a)]}, headers=h(owner)))
    assert [m["user_id"] for m in added["added"]] == [uid(c)]  # a already was a member
    assert ok(await http.get(f"/groups/{gid}", headers=h(c)))["id"] == gid


async def test_a_group_holds_at_most_1024_members(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    owner, a, b = await users(http, 3)
    gid = await group(http, owner, [a])
    await db.executemany("INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
                         [(uuid.UUID(gid), uuid.uuid4()) for _ in range(1021)])  # 1,023 now
    ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(b)]}, headers=h(owner)))
    late = (await users(http, 1))[0]
    body = problem(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(late)]}, headers=h(owner)),
                   409, "group_full")
    assert body["limit"] == 1024 and body["member_count"] == 1024
    problem(await http.get(f"/groups/{gid}", headers=h(late)), 404, "group_not_found")


async def test_who_may_remove_whom(http: httpx.AsyncClient) -> None:
    owner, admin, admin2, m1, m2 = await users(http, 5)
    gid = await group(http, owner, [admin, admin2, m1, m2])
    for user in (admin, admin2):
        ok(await set_role(http, owner, gid, user, "admin"))
    problem(await remove(http, m1, gid, m2), 403, "not_admin")
    problem(await remove(http, admin, gid, admin2), 403, "not_owner")
    problem(await remove(http, admin, gid, owner), 403, "not_owner")
    problem(await remove(http, admin, gid, (await users(http, 1))[0]), 404, "member_not_found")
    ok(await remove(http, admin, gid, m1), 204)
    ok(await remove(http, owner, gid, admin2), 204)
    ok(await remove(http, m2, gid, m2), 204)  # leaving
    assert await roles(http, owner, gid) == {uid(owner): "owner", uid(admin): "admin"}
    problem(await http.get(f"/groups/{gid}", headers=h(m1)), 404, "group_not_found")


async def test_the_owner_leaving_hands_over_and_the_last_member_leaving_deletes(http: httpx.AsyncClient,
                                                                                api: ApiProcess) -> None:
    owner, old_member, admin, newer_admin = await users(http, 4)
    gid = await group(http, owner, [old_member])
    ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(admin)]}, headers=h(owner)))
    ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(newer_admin)]}, headers=h(owner)))
    ok(await set_role(http, owner, gid, newer_admin, "admin"))
    ok(await set_role(http, owner, gid, admin, "admin"))
    ok(await remove(http, owner, gid, owner), 204)
    assert (await roles(http, admin, gid))[uid(admin)] == "owner"  # the longest-standing admin
    assert ok(await http.get(f"/groups/{gid}", headers=h(admin)))["owner_id"] == uid(admin)
    ok(await remove(http, admin, gid, admin), 204)
    assert (await roles(http, newer_admin, gid))[uid(newer_admin)] == "owner"
    ok(await set_role(http, newer_admin, gid, old_member, "member"))
    ok(await remove(http, newer_admin, gid, newer_admin), 204)
    assert await roles(http, old_member, gid) == {uid(old_member): "owner"}  # no admin: the oldest member
    async with device(api.base_url, old_member) as (_, events):
        ok(await remove(http, old_member, gid, old_member), 204)
        gone = await events.wait_for("group:updated", lambda e: e["group_id"] == gid)
        assert gone["deleted"] is True
    problem(await http.get(f"/groups/{gid}", headers=h(old_member)), 404, "group_not_found")


async def test_concurrent_ownership_transfers_leave_exactly_one_owner(http: httpx.AsyncClient,
                                                                      db: asyncpg.Connection) -> None:
    for _ in range(4):
        owner, a, b, c = await users(http, 4)
        gid = await group(http, owner, [a, b, c])
        answers = await asyncio.gather(*(set_role(http, owner, gid, t, "owner") for t in (a, b, c)))
        assert sorted(r.status_code for r in answers) == [200, 403, 403]
        owners = await db.fetch("SELECT user_id FROM messaging.members WHERE conversation_id = $1 "
                                "AND role = 'owner'", uuid.UUID(gid))
        winner = str(owners[0]["user_id"])
        assert len(owners) == 1 and winner in {uid(a), uid(b), uid(c)}
        assert ok(await http.get(f"/groups/{gid}", headers=h(owner)))["owner_id"] == winner
        assert (await roles(http, owner, gid))[uid(owner)] == "admin"
        # The new owner and the old one racing: still one owner.
        new_owner = next(u for u in (a, b, c) if uid(u) == winner)
        await asyncio.gather(set_role(http, new_owner, gid, owner, "owner"), set_role(http, owner, gid, a, "owner"))
        assert await db.fetchval("SELECT count(*) FROM messaging.members WHERE conversation_id = $1 "
                                 "AND role = 'owner'", uuid.UUID(gid)) == 1


async def test_join_requests(http: httpx.AsyncClient) -> None:
    owner, member, asker, blocked, other = await users(http, 5)
    gid = await group(http, owner, [member], join_policy="request")
    closed = await group(http, owner, [member])
    problem(await http.post(f"/groups/{closed}/join-requests", headers=h(asker)), 404, "group_not_found")
    problem(await http.post(f"/groups/{gid}/join-requests", headers=h(member)), 409, "already_member")
    first = ok(await http.post(f"/groups/{gid}/join-requests", headers=h(asker)), 201)
    again = ok(await http.post(f"/groups/{gid}/join-requests", headers=h(asker)), 200)
    assert first["id"] == again["id"] and first["user_id"] == uid(asker)
    ok(await http.post(f"/groups/{gid}/join-requests", headers=h(other)), 201)

    ok(await http.put(f"/users/{uid(blocked)}/block", headers=h(member)))
    problem(await http.post(f"/groups/{gid}/join-requests", headers=h(blocked)), 404, "group_not_found")

    problem(await http.get(f"/groups/{gid}/join-requests", headers=h(member)), 403, "not_admin")
    listed = ok(await http.get(f"/groups/{gid}/join-requests", headers=h(owner)))["items"]
    assert [r["user_id"] for r in listed] == [uid(asker), uid(other)]
    problem(await http.post(f"/groups/{gid}/join-requests/{first['id']}/accept", headers=h(member)), 403,
            "not_admin")
    added = ok(await http.post(f"/groups/{gid}/join-requests/{first['id']}/accept", headers=h(owner)))
    assert [m["user_id"] for m in added["added"]] == [uid(asker)]
    assert uid(asker) in await roles(http, asker, gid)
    problem(await http.post(f"/groups/{gid}/join-requests/{first['id']}/accept", headers=h(owner)), 404,
            "join_request_not_found")
    ok(await http.post(f"/groups/{gid}/join-requests/{listed[1]['id']}/decline", headers=h(owner)), 204)
    assert ok(await http.get(f"/groups/{gid}/join-requests", headers=h(owner)))["items"] == []
    problem(await http.get(f"/groups/{gid}", headers=h(other)), 404, "group_not_found")

    # A block made after the request: the pair does not meet on accept either.
    late = (await users(http, 1))[0]
    request = ok(await http.post(f"/groups/{gid}/join-requests", headers=h(late)), 201)
    ok(await http.put(f"/users/{uid(member)}/block", headers=h(late)))
    problem(await http.post(f"/groups/{gid}/join-requests/{request['id']}/accept", headers=h(owner)), 403,
            "blocked")


async def test_a_new_member_reads_from_the_seq_they_joined_at(http: httpx.AsyncClient) -> None:
    owner, a, late = await users(http, 3)
    gid = await group(http, owner, [a])
    for i in range(3):
        await send(http, a, gid, f"before {i}")
    ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(late)]}, headers=h(owner)))
    seen = ok(await http.get(f"/conversations/{gid}", headers=h(late)))
    assert (seen["unread_count"], seen["last_message"]) == (0, None)
    assert await history(http, late, gid) == []
    after = await send(http, a, gid, "after")
    assert [m["body"] for m in await history(http, late, gid)] == ["after"]
    assert after["seq"] == 4 and ok(await http.get(f"/conversations/{gid}", headers=h(late)))["unread_count"] == 1
    assert [m["seq"] for m in await history(http, owner, gid)] == [1, 2, 3, 4]


async def test_a_removed_member_receives_and_reads_nothing_new(http: httpx.AsyncClient, api: ApiProcess) -> None:
    owner, stays, removed = await users(http, 3)
    gid = await group(http, owner, [stays, removed])
    direct = (await open_direct(http, owner, removed))["id"]
    await send(http, owner, gid, "before")
    head = ok(await http.get("/sync", headers=h(removed)))["next_cursor"]
    async with device(api.base_url, removed) as (_, gone), device(api.base_url, stays) as (_, staying):
        ok(await remove(http, owner, gid, removed), 204)
        notice = await gone.wait_for("group:member_removed")
        assert (notice["group_id"], notice["user_id"], notice["reason"]) == (gid, uid(removed), "removed")
        await staying.wait_for("group:member_removed", lambda e: e["user_id"] == uid(removed))
        after = await send(http, owner, gid, "after")
        await staying.wait_for("message:new", lambda m: m["id"] == after["id"])
        marker = await send(http, owner, direct, "marker")
        await gone.wait_for("message:new", lambda m: m["id"] == marker["id"])
        assert [m["body"] for m in gone.events["message:new"]] == ["marker"]
    items = ok(await http.get("/sync", params={"cursor": head}, headers=h(removed)))["items"]
    assert [(i["type"], i["conversation_id"]) for i in items] == [("group:member_removed", gid),
                                                                  ("message:new", direct)]
    problem(await http.get(f"/conversations/{gid}/messages", headers=h(removed)), 404, "conversation_not_found")
    response = await http.post(f"/conversations/{gid}/messages", json={"client_msg_id": "x", "body": "hi"},
                               headers=h(removed))
    problem(response, 404, "conversation_not_found")


async def test_membership_changes_reach_sync_and_sockets(http: httpx.AsyncClient, api: ApiProcess) -> None:
    owner, a, newcomer = await users(http, 3)
    gid = await group(http, owner, [a])
    head = ok(await http.get("/sync", headers=h(a)))["next_cursor"]
    async with device(api.base_url, a) as (_, events), device(api.base_url, newcomer) as (_, joined):
        ok(await http.post(f"/groups/{gid}/members", json={"user_ids": [uid(newcomer)]}, headers=h(owner)))
        added = await events.wait_for("group:member_added")
        assert [m["user_id"] for m in added["members"]] == [uid(newcomer)] and added["actor_id"] == uid(owner)
        await joined.wait_for("group:member_added", lambda e: e["group_id"] == gid)
        ok(await set_role(http, owner, gid, a, "admin"))
        promoted = await events.wait_for("group:updated", lambda e: e["roles"])
        assert promoted["roles"] == [{"user_id": uid(a), "role": "admin"}]
        ok(await http.patch(f"/groups/{gid}", json={"name": "new name"}, headers=h(owner)))
        await joined.wait_for("group:updated", lambda e: e["name"] == "new name")
        ok(await remove(http, newcomer, gid, newcomer), 204)
        left = await events.wait_for("group:member_removed")
        assert (left["user_id"], left["reason"]) == (uid(newcomer), "left")
    items = ok(await http.get("/sync", params={"cursor": head}, headers=h(a)))["items"]
    assert [i["type"] for i in items] == ["group:member_added", "group:updated", "group:updated",
                                          "group:member_removed"]


async def test_the_owner_deletes_the_group_and_its_history(http: httpx.AsyncClient, api: ApiProcess,
                                                           db: asyncpg.Connection) -> None:
    owner, admin = await users(http, 2)
    gid = await group(http, owner, [admin])
    ok(await set_role(http, owner, gid, admin, "admin"))
    await send(http, admin, gid, "soon gone")
    problem(await http.delete(f"/groups/{gid}", headers=h(admin)), 403, "not_owner")
    async with device(api.base_url, admin) as (_, events):
        ok(await http.delete(f"/groups/{gid}", headers=h(owner)), 204)
        assert (await events.wait_for("group:updated", lambda e: e["group_id"] == gid))["deleted"] is True
    for user in (owner, admin):
        problem(await http.get(f"/conversations/{gid}/messages", headers=h(user)), 404, "conversation_not_found")
    assert await db.fetchval("SELECT count(*) FROM messaging.messages WHERE conversation_id = $1",
                             uuid.UUID(gid)) == 0


async def test_a_deleted_account_leaves_its_groups(http: httpx.AsyncClient) -> None:
    owner, member = await users(http, 2)
    gid = await group(http, owner, [member])
    alone = await group(http, owner, [member])
    ok(await remove(http, member, alone, member), 204)
    ok(await http.request("DELETE", "/users/me", json={"password": owner["password"]}, headers=h(owner)), 204)
    for _ in range(100):  # the listener runs after the deletion's commit
        if (await roles(http, member, gid)) == {uid(member): "owner"}:
            break
        await asyncio.sleep(0.05)
    assert await roles(http, member, gid) == {uid(member): "owner"}
    problem(await http.get(f"/groups/{alone}", headers=h(member)), 404, "group_not_found")


async def test_membership_queries(http: httpx.AsyncClient, ctx: AppContext) -> None:
    owner, a, direct_peer, stranger = await users(http, 4)
    gid = await group(http, owner, [a])
    await open_direct(http, owner, direct_peer)
    assert await ctx.queries.ask(IsConversationMember(user_id=uuid.UUID(uid(a)), conversation_id=uuid.UUID(gid)))
    assert not await ctx.queries.ask(IsConversationMember(user_id=uuid.UUID(uid(stranger)),
                                                          conversation_id=uuid.UUID(gid)))
    assert set(await ctx.queries.ask(ConversationMemberIds(conversation_id=uuid.UUID(gid)))) == {
        uuid.UUID(uid(owner)), uuid.UUID(uid(a))}
    assert await ctx.queries.ask(ConversationMemberIds(conversation_id=uuid.uuid4())) == []
    peers = await ctx.queries.ask(ConversationPeerIds(user_id=uuid.UUID(uid(owner))))
    assert peers == {uuid.UUID(uid(a)), uuid.UUID(uid(direct_peer))}
    among = await ctx.queries.ask(ConversationPeerIds(user_id=uuid.UUID(uid(owner)),
                                                      among=[uuid.UUID(uid(a)), uuid.UUID(uid(stranger))]))
    assert among == {uuid.UUID(uid(a))}
    big = await group(http, owner, [stranger, a])  # three members
    near = await ctx.queries.ask(ConversationPeerIds(user_id=uuid.UUID(uid(stranger)), max_group_members=2))
    assert near == set() and big
    assert await ctx.queries.ask(ConversationPeerIds(user_id=uuid.UUID(uid(owner)), max_group_members=2)) == {
        uuid.UUID(uid(a)), uuid.UUID(uid(direct_peer))}


async def test_group_messages_write_no_row_per_member_and_reach_sync(http: httpx.AsyncClient,
                                                                     db: asyncpg.Connection) -> None:
    owner, a, b = await users(http, 3)
    gid = await group(http, owner, [a, b])
    head = ok(await http.get("/sync", headers=h(a)))["next_cursor"]
    heads_before = await db.fetchval("SELECT sum(position) FROM messaging.sync_heads WHERE user_id = ANY($1)",
                                     [uuid.UUID(uid(u)) for u in (owner, a, b)])
    sent = [await send(http, owner, gid, f"m{i}") for i in range(3)]
    assert await db.fetchval("SELECT count(*) FROM messaging.changes WHERE conversation_id = $1 "
                             "AND type = 'message:new'", uuid.UUID(gid)) == 0
    assert await db.fetchval("SELECT sum(position) FROM messaging.sync_heads WHERE user_id = ANY($1)",
                             [uuid.UUID(uid(u)) for u in (owner, a, b)]) == heads_before

    items: list[dict[str, Any]] = []
    cursor = head
    for _ in range(100):  # a group message shows once every older writing transaction has ended
        page = ok(await http.get("/sync", params={"cursor": cursor, "limit": 2}, headers=h(a)))
        items += page["items"]
        cursor = page["next_cursor"]
        if len(items) >= 3 and not page["has_more"]:
            break
        if not page["has_more"]:
            await asyncio.sleep(0.05)
    assert [(i["type"], i["data"]["id"], i["data"]["seq"]) for i in items] == [
        ("message:new", m["id"], m["seq"]) for m in sent]
    again = ok(await http.get("/sync", params={"cursor": cursor}, headers=h(a)))
    assert again["items"] == []  # once
    problem(await http.get("/sync", params={"cursor": cursor[:-4] + "AAAA"}, headers=h(a)), 400, "invalid_cursor")
