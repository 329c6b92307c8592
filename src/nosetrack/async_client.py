"""`AsyncClient`: `nosetrack.Client` for asyncio code, on httpx (`pip install '.[async]'` in the clone).

The same methods, answers and `ServerError`s as `Client`; the requests are built and the answers read by the
same functions (`image_request`, `answer_of`). Failures to reach the server are httpx's (`httpx.HTTPError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from .client import Outcome, ServerError, answer_of, base_url, image_request

try:
    import httpx
except ImportError as missing:  # an extra, so that the base install stays as it was
    raise ImportError("AsyncClient needs httpx: pip install '.[async]' in nosetrack's clone") from missing


class AsyncClient:
    """Talks to one server from asyncio code; one connection pool, shared by concurrent calls.

    >>> async with AsyncClient("http://127.0.0.1:5000") as client:
    ...     answer = await client.predict("face.jpg")
    """

    def __init__(self, url: str = "http://127.0.0.1:5000", timeout: float = 30.0, api_key: str | None = None):
        self.url = base_url(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=64)
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def predict_bytes(self, data: bytes, route: str = "/v1/nose") -> dict[str, Any]:
        """The server's answer for one encoded image, sent the way `route` expects it."""
        sent = image_request(data, route)
        response = await self._client.post(
            self.url + route, json=sent.json, files=sent.files, content=sent.body, headers=sent.headers
        )
        return answer_of(response)

    async def predict(self, path: str | Path, route: str = "/v1/nose") -> dict[str, Any]:
        data = await asyncio.to_thread(Path(path).read_bytes)
        return await self.predict_bytes(data, route)

    async def predict_many(
        self, paths: Iterable[str | Path], concurrency: int = 8, route: str = "/v1/nose"
    ) -> AsyncIterator[Outcome]:
        """Answers for many files, `concurrency` requests in flight, yielded in the order given."""
        slots = asyncio.Semaphore(concurrency)

        async def one(path: Path) -> Outcome:
            async with slots:
                try:
                    return Outcome(path, result=await self.predict(path, route))
                except (OSError, httpx.HTTPError, ServerError) as error:
                    return Outcome(path, error=str(error))

        tasks = [asyncio.create_task(one(path)) for path in map(Path, paths)]
        try:
            for task in tasks:
                yield await task
        finally:  # a caller that stops early leaves nothing running
            for task in tasks:
                task.cancel()

    async def version(self) -> dict[str, Any]:
        response = await self._client.get(self.url + "/version")
        response.raise_for_status()
        return response.json()
