"""A fake Inngest SDK in the test process: it answers each call as a test scripts it."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.sdk.conftest import Server

Answer = tuple[int, dict[str, str], Any]


def sha1(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


class FakeSdk:
    """Answers ``POST /<app>?fnId=...&stepId=...`` with ``scripts[app](request, step_id)``; keeps every call."""

    def __init__(self) -> None:
        self.scripts: dict[str, Callable[[dict[str, Any], str], Answer]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.signatures: dict[str, str | None] = {}  # the x-inngest-signature of each app's latest call
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()  # headers and body go in two writes: without this, Nagle's delay holds the second
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["content-length"])))
                parts = urlsplit(self.path)
                app, step_id = parts.path.strip("/"), parse_qs(parts.query)["stepId"][0]
                fake.calls.append((app, step_id, request))
                fake.signatures[app] = self.headers.get("x-inngest-signature")
                status, headers, body = fake.scripts[app](request, step_id)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"x-inngest-sdk": "inngest-py:v0.5.19", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, server: Server, script: Callable[[dict[str, Any], str], Answer], retries: int = 0,
            app_id: str | None = None, function: str = "f", headers: dict[str, str] | None = None) -> str:  # fmt: skip
        """Sync an app of one function ``<app>-<function>`` on ``<app>/go`` answered by ``script``; the app id."""
        app_id = app_id or "fake" + uuid.uuid4().hex[:8]
        self.scripts[app_id] = script
        response = server.http.post("/fn/register", json=sync(app_id, f"{self.url}/{app_id}", retries, function),
                                    headers=headers)  # fmt: skip
        assert response.json() == {"ok": True, "modified": True}, response.text
        return app_id

    def steps_of(self, app_id: str) -> list[str]:
        return [step for app, step, _ in self.calls if app == app_id]


def sync(app_id: str, url: str, retries: int = 0, function: str = "f") -> dict[str, Any]:
    fid = f"{app_id}-{function}"
    return {"appname": app_id, "url": url, "v": "0.1", "deploy_type": "ping", "sdk": "py:v0.5.19",
            "framework": "fast_api", "functions": [{
                "id": fid, "name": function, "triggers": [{"event": f"{app_id}/go"}],
                "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": retries},
                                   "runtime": {"type": "http", "url": f"{url}?fnId={fid}&stepId=step"}}},
            }]}  # fmt: skip


def op(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"id": sha1(name), "op": kind, "name": name, "displayName": name, "opts": None, "data": None, **fields}
