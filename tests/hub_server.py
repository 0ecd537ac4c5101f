"""A small Hugging Face hub-compatible HTTP server for tests: what ``huggingface_hub`` really calls.

Implements, for model repos, the routes the real client (``huggingface_hub`` 2.x) uses to push and download:

- ``POST /api/repos/create`` (409 when the repo exists), ``POST /api/{type}s/{repo}/branch/{branch}``
- ``POST /api/validate-yaml`` (the README.md front matter must be a YAML mapping)
- ``POST /api/{type}s/{repo}/preupload/{rev}`` (all ``regular``: no LFS/Xet; ``oid`` of a stored file)
- ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON: ``header``, ``file`` base64, ``deletedFile``)
- ``GET /api/{type}s/{repo}[/revision/{rev}]`` (repo info with ``sha`` and ``siblings``)
- ``GET /api/{type}s/{repo}/tree/{rev}`` (file list for ``snapshot_download``)
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``, ``Content-Length``)
- ``GET /api/whoami-v2``

Tokens are checked (``Authorization: Bearer``): an unknown token is a 401, a namespace that is not the
token's user is a 403, a private repo is invisible (404) without a valid token. Commits are kept in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a file's content, as the hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def commit(self, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = self.branches.get(branch)
        digest = hashlib.sha1(f"{self.repo_id}{parent}{message}{len(self.commits)}".encode()).hexdigest()
        commit = Commit(digest, message, files, parent)
        self.commits[digest] = commit
        self.branches[branch] = digest
        return commit

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def files(self, revision: str = "main") -> dict[str, bytes]:
        """The files at ``revision`` (a branch or a commit oid)."""
        commit = self.resolve(revision)
        return dict(commit.files) if commit else {}


class HubState:
    """Everything the server holds: repos, the accepted tokens, and a log of (method, path) requests."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens  # token -> user name
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []
        self.lock = threading.Lock()


_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(\w[\w-]*)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if header:
            self.state.authorizations.append(header)
        token = header.removeprefix("Bearer ").strip()
        return self.state.tokens.get(token)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream"
        )
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _visible_repo(self, repo_id: str) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and self._user() != repo_id.split("/")[0]):
            return None
        return repo

    def _route(self) -> None:
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)  # groups are unquoted after matching (revisions hold %2F)
        with self.state.lock:
            self.state.requests.append((self.command, unquote(path)))
        if self.command == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(self._body()))
        if self.command == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(self._body()))
        if self.command == "GET" and path == "/api/whoami-v2":
            user = self._user()
            return (
                self._send(200, {"type": "user", "name": user})
                if user
                else self._error(401, "Invalid credentials in Authorization header")
            )
        if match := _API_REPO.match(path):
            return self._api_repo(match.group(2), match.group(3), match.group(4), query)
        if (match := _RESOLVE.match(path)) and self.command in ("GET", "HEAD"):
            return self._resolve(match.group(2), unquote(match.group(3)), unquote(match.group(4)))
        self._error(404, f"no route for {self.command} {path}")

    do_GET = do_POST = do_HEAD = _route

    # -- routes -----------------------------------------------------------------------------------
    def _create_repo(self, payload: dict) -> None:
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        namespace = payload.get("organization") or user
        if namespace != user:
            return self._error(
                403, f'You don\'t have the rights to create a model under the namespace "{namespace}"'
            )
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.server.url}/{repo_id}"
        with self.state.lock:
            if repo_id in self.state.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url})
            repo = Repo(
                repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private"))
            )
            repo.commit(
                "main",
                "initial commit",
                {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
            )
            self.state.repos[repo_id] = repo
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        content = payload.get("content", "")
        errors = []
        if content.startswith("---"):
            front = content.split("---", 2)[1]
            try:
                meta = yaml.safe_load(front)
                if not isinstance(meta, dict):
                    errors.append("metadata must be a YAML mapping")
            except yaml.YAMLError as err:
                errors.append(f"invalid YAML: {err}")
        self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

    def _api_repo(self, repo_id: str, action: str | None, rest: str | None, query: dict) -> None:
        repo = self._visible_repo(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        rest, _, subpath = (rest or "").partition("/") if action == "tree" else (rest or "", "", "")
        rest, subpath = unquote(rest), unquote(subpath)
        if action in ("preupload", "commit", "branch") and self._user() != repo_id.split("/")[0]:
            return self._error(403, "You don't have write access to this repo")
        if action is None or action == "revision":
            commit = repo.resolve(rest or "main")
            if commit is None:
                return self._error(404, f"Invalid rev id: {rest}", "RevisionNotFound")
            siblings = [{"rfilename": name} for name in sorted(commit.files)]
            return self._send(
                200,
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": commit.oid,
                    "private": repo.private,
                    "siblings": siblings,
                    "tags": [],
                    "downloads": 0,
                    "likes": 0,
                },
            )
        if action == "tree" and self.command == "GET":
            commit = repo.resolve(rest or "main")
            if commit is None:
                return self._error(404, f"Invalid rev id: {rest}", "RevisionNotFound")
            prefix = f"{subpath.strip('/')}/" if subpath.strip("/") else ""
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                for name, data in sorted(commit.files.items())
                if name.startswith(prefix)
            ]
            if prefix and not entries:
                return self._error(404, f"{subpath} does not exist on {rest}", "EntryNotFound")
            return self._send(200, entries)
        if action == "branch" and self.command == "POST":
            payload = json.loads(self._body() or b"{}")
            start = repo.resolve(payload.get("startingPoint") or "main")
            with self.state.lock:
                if rest in repo.branches:
                    return self._error(409, "Branch already exists")
                repo.branches[rest] = start.oid
            return self._send(200, {})
        if action == "preupload" and self.command == "POST":
            files = repo.files(rest)
            answer = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(files[f["path"]]) if f["path"] in files else None,
                }
                for f in json.loads(self._body())["files"]
            ]
            return self._send(
                200, {"files": answer, "commitOid": repo.resolve(rest).oid if repo.resolve(rest) else None}
            )
        if action == "commit" and self.command == "POST":
            return self._commit(repo, rest)
        self._error(404, f"no route for {self.command} {action}")

    def _commit(self, repo: Repo, branch: str) -> None:
        if branch not in repo.branches:
            return self._error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return self._error(400, "the first NDJSON line must be the header")
        files = repo.files(branch)
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            else:
                return self._error(400, f"unsupported commit operation {line['key']!r} (no LFS here)")
        with self.state.lock:
            commit = repo.commit(branch, lines[0]["value"]["summary"], files)
        url = f"{self.server.url}/{repo.repo_id}/commit/{commit.oid}"
        self._send(200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None})

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self._visible_repo(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        commit = repo.resolve(revision)
        if commit is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if filename not in commit.files:
            return self._send(
                404,
                {"error": "Entry not found"},
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit.oid},
            )
        data = commit.files[filename]
        self._send(200, data, {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha1(data)}"'})


class HubServer(ThreadingHTTPServer):
    """``with HubServer(tokens) as hub: ...``: serves on a free loopback port in a thread until closed."""

    daemon_threads = True

    def __init__(self, tokens: dict[str, str], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), HubHandler)
        self.state = HubState(tokens)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    """Serve until interrupted (``python tests/hub_server.py --port 8765``); accepts ``$HF_TOKEN`` only."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--user", default="tester")
    args = parser.parse_args()
    if not os.environ.get("HF_TOKEN"):
        raise SystemExit("set HF_TOKEN: the one token this server accepts")
    server = HubServer({os.environ["HF_TOKEN"]: args.user}, port=args.port)
    print(f"hub on {server.url} (user {args.user}); HF_ENDPOINT={server.url}", flush=True)  # noqa: T201
    server.serve_forever()


if __name__ == "__main__":
    main()
