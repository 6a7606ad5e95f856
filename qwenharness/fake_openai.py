"""A minimal OpenAI-compatible server with scripted faults, for the server engine's fault tests.

It answers GET /v1/models, GET /version, POST /v1/completions and /v1/chat/completions with
deterministic content (a text derived from the prompt; prompt log-probabilities derived from the
token ids), and can be told to fail: HTTP 500 for the first `fail_s` seconds, stall `stall_s` seconds
before answering, require an API key, or return no prompt log-probabilities. It runs in a thread of
the test process (http.server, no dependency) and counts what it was asked.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeBehaviour:
    model: str = "tiny"
    max_model_len: int = 8192
    api_key: str | None = None  # required as "Bearer <key>" when set
    fail_s: float = 0.0  # answer 500 to completions for this long after the first one
    stall_s: float = 0.0  # sleep this long before answering a completion
    prompt_logprobs: bool = True  # False: a server without vLLM's prompt_logprobs (and no echo)
    die_after: int | None = None  # after this many answered completions, 503 only (until set to None)
    counts: dict[str, int] = field(default_factory=dict)


def _digest(obj: Any) -> int:
    return int(hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8], 16)


class FakeOpenAIServer:
    def __init__(self, behaviour: FakeBehaviour | None = None):
        self.behaviour = behaviour or FakeBehaviour()
        self._lock = threading.Lock()
        self._started: float | None = None  # the first completion request
        self._answered = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _authorised(self) -> bool:
                key = server.behaviour.api_key
                if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                    return True
                self._send(401, {"error": {"message": "Unauthorized", "type": "invalid_request_error"}})
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server._count("GET " + self.path)
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    b = server.behaviour
                    self._send(200, {"object": "list", "data": [
                        {"id": b.model, "object": "model", "max_model_len": b.max_model_len, "root": b.model}]})
                elif self.path == "/version":
                    self._send(200, {"version": "fake-1"})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                server._count("POST " + self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if not self._authorised():
                    return
                b = server.behaviour
                if body.get("model") != b.model:
                    self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                    return
                with server._lock:
                    if server._started is None:
                        server._started = time.monotonic()
                if time.monotonic() - server._started < b.fail_s:
                    server._count("500")
                    self._send(500, {"error": {"message": "internal error (scripted)"}})
                    return
                if b.die_after is not None and server._answered >= b.die_after:
                    self._send(503, {"error": {"message": "service unavailable (scripted)"}})
                    return
                if b.stall_s:
                    time.sleep(b.stall_s)
                with server._lock:
                    server._answered += 1
                if self.path == "/v1/completions":
                    self._send(200, server._completion(body))
                elif self.path == "/v1/chat/completions":
                    text = f"reply {_digest(body.get('messages')) % 10}"
                    self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _count(self, what: str) -> None:
        with self._lock:
            self.behaviour.counts[what] = self.behaviour.counts.get(what, 0) + 1

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "text": f" answer {_digest(prompt) % 10}"}
        if body.get("prompt_logprobs") and self.behaviour.prompt_logprobs and isinstance(prompt, list):
            choice["prompt_logprobs"] = [None] + [
                {str(t): {"logprob": -((_digest([prompt[:i + 1]]) % 50) / 10), "rank": 1 + t % 2,
                          "decoded_token": "x"}} for i, t in enumerate(prompt[1:], start=1)]
        n = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        return {"choices": [choice], "usage": {"prompt_tokens": n, "completion_tokens": 2}}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
