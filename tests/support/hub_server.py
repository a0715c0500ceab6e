"""A stdlib stand-in for the Hub endpoints that `create_repo` + `upload_folder` use; it records every request."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingHub:
    """Serve on 127.0.0.1 (a free port); `requests` lists (method, path), `commits` the decoded commit payloads."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.commits: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingHub":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reply(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """JSON answer for one request."""
        self.requests.append((method, path))
        if method == "GET" and path.startswith("/api/agent-harnesses"):
            return 200, {}
        if method == "POST" and path == "/api/repos/create":
            name = json.loads(body)
            repo_id = f"{name.get('organization') or 'user'}/{name['name']}"
            return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id}
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        match = re.fullmatch(r"/api/models/(.+)/(preupload|commit)/([^/]+)", path)
        if method == "POST" and match and match.group(2) == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if method == "POST" and match:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            files = {v["value"]["path"]: base64.b64decode(v["value"]["content"]) for v in lines if v["key"] == "file"}
            header = next((v["value"] for v in lines if v["key"] == "header"), {})
            self.commits.append({"repo_id": match.group(1), "revision": match.group(3), "header": header,
                                 "files": files})
            oid = f"{len(self.commits):040x}"
            return 200, {"commitUrl": f"{self.url}/{match.group(1)}/commit/{oid}", "commitOid": oid}
        return self.resolve(method, path)

    def resolve(self, method: str, path: str) -> tuple[int, Any]:
        """``/{repo_id}/resolve/{revision}/{file}``: the file as of the last commit (bytes), else 404."""
        match = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path)
        stored = {p: d for c in self.commits if match and c["repo_id"] == match.group(1) for p, d in c["files"].items()}
        if method not in ("GET", "HEAD") or not match or match.group(3) not in stored:
            return 404, {"error": f"unexpected {method} {path}"}
        return 200, stored[match.group(3)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = hub.reply(self.command, self.path.split("?")[0], body)
                raw = isinstance(payload, bytes)
                data = payload if raw else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                if raw:
                    self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                    self.send_header("X-Repo-Commit", f"{len(hub.commits):040x}")
                if status == 404:
                    self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
