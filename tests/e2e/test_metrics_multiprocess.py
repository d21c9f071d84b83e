"""`chatty api --workers 2`: whichever process answers /metrics, it reports every process's counts."""

from __future__ import annotations

import httpx

from tests.e2e.harness import ApiProcess


def _requests_to(text: str, path: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("chatty_requests_total") and f'path="{path}"' in line)


async def test_metrics_sum_every_api_process(app_env: dict[str, str], migrated_db: str) -> None:
    api = ApiProcess({**app_env, "RUN_OUTBOX_RELAY": "false"})
    api.args += ["--workers", "2"]
    api.start(timeout=60)
    try:
        # A new connection per request, so the kernel spreads them over both processes.
        for _ in range(40):
            async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
                response = await client.get("/api/v1/users/me")
                assert response.status_code == 401
        scrapes: list[float] = []
        for _ in range(6):
            async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
                metrics = await client.get("/metrics", headers={
                    "Authorization": f"Bearer {app_env['METRICS_TOKEN']}"})
                assert metrics.status_code == 200
                scrapes.append(_requests_to(metrics.text, "/api/v1/users/me"))
        # Every scrape, whichever process served it, counts all 40 requests.
        assert scrapes == [40.0] * len(scrapes), scrapes
    finally:
        api.stop()


