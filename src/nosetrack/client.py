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


@dataclass(frozen=True)
class ImageRequest:
    """One encoded image as a route wants it: a JSON document, a multipart file, or the raw body."""

    json: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None


def image_request(data: bytes, route: str) -> ImageRequest:
    """How `route` takes an image: /image-64 base64 in JSON, /image-bin a form, /v1/nose the bytes."""
    if route == "/image-64":
        return ImageRequest(json={"image": base64.b64encode(data).decode("ascii")})
    if route == "/image-bin":
        return ImageRequest(files={"image": ("image", data)})
    content_type = sniff_image_type(data) or "application/octet-stream"
    return ImageRequest(body=data, headers={"Content-Type": content_type})


def base_url(url: str) -> str:
    """The server's address without a trailing slash; http:// is added when no scheme is given."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def answer_of(response: Any) -> dict[str, Any]:
    """The JSON answer of a requests or httpx response; ServerError when it is an error."""
    try:
        body = response.json()
    except ValueError:
        raise ServerError(response.status_code, "not_json", response.text[:200]) from None
    if response.status_code != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise ServerError(response.status_code, error.get("code", "error"), error.get("message", str(body)))
    return body


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
        self.url = base_url(url)
        self.timeout = timeout
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"

    def predict_bytes(self, data: bytes, route: str = "/v1/nose") -> dict[str, Any]:
        """The server's answer for one encoded image, sent the way `route` expects it."""
        sent = image_request(data, route)
        response = self._session.post(
            self.url + route,
            json=sent.json,
            files=sent.files,
            data=sent.body,
            headers=sent.headers,
            timeout=self.timeout,
        )
        return answer_of(response)

    def predict(self, path: str | Path, route: str = "/v1/nose") -> dict[str, Any]:
        return self.predict_bytes(Path(path).read_bytes(), route)

    def predict_many(
        self, paths: Iterable[str | Path], concurrency: int = 8, route: str = "/v1/nose"
    ) -> Iterator[Outcome]:
        """Answers for many files, `concurrency` requests in flight, yielded in the order given."""

        def one(path: Path) -> Outcome:
            try:
                return Outcome(path, result=self.predict(path, route))
            except (OSError, requests.RequestException, ServerError) as error:
                return Outcome(path, error=str(error))

        executor = ThreadPoolExecutor(max_workers=concurrency)
        try:
            yield from executor.map(one, map(Path, paths))
        finally:  # a reader that stops early (`predict ... | head`) must not wait for every other file
            executor.shutdown(cancel_futures=True)

    def version(self) -> dict[str, Any]:
        response = self._session.get(self.url + "/version", timeout=self.timeout)
        response.raise_for_status()
        return response.json()
