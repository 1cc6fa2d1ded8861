"""A small Hub-compatible HTTP server on 127.0.0.1 for tests, driven by the real `huggingface_hub` client.

It implements what `HfApi.create_repo`, `upload_folder` (regular, inline uploads),
`list_models(filter=tag)` and `hf_hub_download` call, in memory. Tags come from the YAML of
each repo's README.md, as on the Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.lock = threading.Lock()

    def tags(self, repo_id: str) -> list[str]:
        readme = self.repos[repo_id]["files"].get("README.md", b"").decode()
        if readme.startswith("---"):
            meta = yaml.safe_load(readme.split("---", 2)[1]) or {}
            return list(meta.get("tags", []))
        return []


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _json(self, payload, status=200, headers=None):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status, code, message):
            self._json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _endpoint(self) -> str:
            return f"http://{self.headers['Host']}"

        def do_POST(self):
            path = urlparse(self.path).path
            if path == "/api/validate-yaml":  # model-card metadata check before upload
                self._body()
                return self._json({"errors": [], "warnings": []})
            if path == "/api/repos/create":
                data = json.loads(self._body())
                repo_id = f"{data.get('organization') or 'user'}/{data['name']}" if "/" not in data["name"] else data["name"]
                with state.lock:
                    if repo_id in state.repos:
                        return self._error(409, "RepoExists", "You already created this model repo")
                    state.repos[repo_id] = {"files": {}, "sha": "0" * 40, "private": bool(data.get("private"))}
                return self._json({"url": f"{self._endpoint()}/{repo_id}", "name": repo_id})
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/(.+)", path)
            if not m:
                return self._error(404, "NotFound", f"no route {path}")
            repo_id, verb = m.group(1), m.group(2)
            if repo_id not in state.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if verb == "preupload":
                files = json.loads(self._body())["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                              "oid": None} for f in files]})
            lines = [json.loads(l) for l in self._body().splitlines() if l.strip()]
            with state.lock:
                repo = state.repos[repo_id]
                for item in lines:
                    if item["key"] == "file":
                        repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        repo["files"].pop(item["value"]["path"], None)
                    elif item["key"] == "lfsFile":
                        return self._error(400, "BadRequest", "LFS uploads are not supported by this test server")
                digest = hashlib.sha1(repr(sorted((k, v) for k, v in repo["files"].items())).encode()).hexdigest()
                repo["sha"] = digest
            return self._json({"commitUrl": f"{self._endpoint()}/{repo_id}/commit/{digest}", "commitOid": digest,
                               "success": True})

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/api/models":
                query = parse_qs(url.query)
                wanted = set(query.get("filter", []))
                author = query.get("author", [None])[0]
                limit = int(query.get("limit", [10**9])[0])
                with state.lock:
                    models = [{"id": r, "modelId": r, "tags": state.tags(r), "sha": state.repos[r]["sha"],
                               "private": state.repos[r]["private"]}
                              for r in sorted(state.repos)
                              if wanted <= set(state.tags(r)) and (author is None or r.split("/")[0] == author)]
                return self._json(models[:limit])
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", url.path)
            if not m:
                return self._error(404, "NotFound", f"no route {url.path}")
            repo_id, filename = m.group(1), unquote(m.group(3))
            with state.lock:
                repo = state.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                if filename not in repo["files"]:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist in {repo_id}")
                content, sha = repo["files"][filename], repo["sha"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("ETag", f'"{hashlib.sha1(content).hexdigest()}"')
            self.send_header("X-Repo-Commit", sha)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_HEAD = do_GET

    return Handler


class LocalHub:
    """`with LocalHub() as hub:` serves on a free port; `hub.endpoint` is its URL."""

    def __init__(self):
        self.state = HubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
