"""A Python client for a nosetrack server, and the engine of `nosetrack predict`."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .images import IMAGE_SUFFIXES, sniff_image_type


class ServerError(RuntimeError):
    """The server answered with an error; `status` and `code` come from its JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass
class Outcome:
    """The answer for one file: `result` on success, `error` otherwise."""

    path: Path
    result: dict[str, Any] | None = None
    error: str | None = None


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files given directly, plus every image file under the folders given, sorted per folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(path)
    return found


class Client:
    """Talks to one server. Thread-safe: one connection pool, shared by `predict_many`'s threads.

    >>> client = Client("http://127.0.0.1:5000")
    >>> client.predict("face.jpg")["x"]
    """

    def __init__(self, url: str = "http://127.0.0.1:5000", timeout: float = 30.0, api_key: str | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def _post(self, route: str, **kwargs: Any) -> dict[str, Any]:
        response = self._session.post(self.url + route, timeout=self.timeout, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise ServerError(response.status_code, "not_json", response.text[:200]) from None
        if response.status_code != 200:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ServerError(
                response.status_code, error.get("code", "error"), error.get("message", str(body))
            )
        return body

    def predict_bytes(self, data: bytes, route: str = "/v1/nose") -> dict[str, Any]:
        """The server's answer for one encoded image, sent the way `route` expects it."""
        if route == "/image-64":
            return self._post(route, json={"image": base64.b64encode(data).decode("ascii")})
        if route == "/image-bin":
            return self._post(route, files={"image": ("image", data)})
        content_type = sniff_image_type(data) or "application/octet-stream"
        return self._post(route, data=data, headers={"Content-Type": content_type})

    def predict(self, path: str | Path, route: str = "/v1/nose") -> dict[str, Any]:
        return self.predict_bytes(Path(path).read_bytes(), route)

    def predict_many(
        self, paths: Iterable[str | Path], concurrency: int = 8, route: str = "/v1/nose"
    ) -> Iterator[Outcome]:
        """Answers for many files, `concurrency` requests in flight, yielded as they complete."""

        def one(path: Path) -> Outcome:
            try:
                return Outcome(path, result=self.predict(path, route))
            except (OSError, requests.RequestException, ServerError) as error:
                return Outcome(path, error=str(error))

        with ThreadPoolExecutor(max_workers=concurrency) as executor:
            yield from executor.map(one, map(Path, paths))

    def version(self) -> dict[str, Any]:
        response = self._session.get(self.url + "/version", timeout=self.timeout)
        response.raise_for_status()
        return response.json()
