"""Process CPU per MessageCreated through the bus's background listeners (the API's after-commit
work for a 1:1 message): `per_turn` events committed per loop turn, as the dispatcher gets them."""
import asyncio, os, sys, time, uuid
sys.path.insert(0, os.environ.get("CODE", "/work/wt/machine"))
import socketio
from src.bootstrap import MODULES, build_context
from src.common.events.messaging import MessageCreated
from src.infra.config import Settings
from src.socket.emitter import SocketRealtime

async def main(n: int, per_turn: int):
    settings = Settings()
    manager = socketio.AsyncRedisManager(settings.redis_url, write_only=True)
    ctx = build_context(settings, lambda redis: SocketRealtime(manager.emit, redis))
    for module in MODULES:
        module.build(ctx)
    if os.environ.get("NOOP"):
        from src.modules.notifications.messages import MessageNotifications
        async def noop(self, event): return None
        MessageNotifications.schedule = noop
    users = [uuid.uuid4() for _ in range(200)]
    conv = [uuid.uuid4() for _ in range(100)]
    async def run(count):
        for i in range(0, count, per_turn):
            events = [MessageCreated(message_id=uuid.uuid4(), conversation_id=conv[(i + j) % 100],
                                     sender_id=users[2 * ((i + j) % 100)], recipient_ids=[users[2 * ((i + j) % 100) + 1]],
                                     seq=i + j + 1) for j in range(per_turn)]
            ctx.bus.dispatcher.submit([(e, []) for e in events])
            await asyncio.sleep(0.002)
        await ctx.bus.drain()
    await run(500)
    out = []
    if os.environ.get("PROFILE"):
        import cProfile, pstats
        pr = cProfile.Profile(); pr.enable(); await run(n); pr.disable()
        pstats.Stats(pr).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(40)
        return
    for _ in range(4):
        c0 = time.process_time()
        await run(n)
        out.append(1e6 * (time.process_time() - c0) / n)
    if os.environ.get("BASELINE"):  # the same turns without events: the loop's own cost
        c0 = time.process_time()
        for i in range(0, n, per_turn):
            await asyncio.sleep(0.002)
        print(f"idle loop per event slot: {1e6 * (time.process_time() - c0) / n:.0f} µs")
    print(f"per_turn {per_turn}: " + ", ".join(f"{x:.0f}" for x in out) + " µs process CPU per event")
    await ctx.redis.aclose(); await ctx.db.dispose()

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
