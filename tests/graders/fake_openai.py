"""A tiny OpenAI-compatible server on 127.0.0.1 for tests: chat completions and embeddings.

The judge's answer depends on the last message's text, so tests can steer it:
``Reference answer: X ... Model answer: Y`` -> ``{"result": 1.0 if X == Y else 0.0}``;
``Statement: ...`` -> positive when it contains "love", negative when "hate", else neutral;
``REFUSE`` -> a refusal; ``GARBAGE`` -> unparseable text; ``FLAKY`` -> HTTP 500 for the first two calls.
Faults for any request: ``replies`` (``(status, headers)`` pairs) are answered first, in order, with an
error body; while ``hang`` is set, requests get no answer until it is cleared. ``arrived`` holds each
request's ``time.monotonic()`` as the server saw it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self):
        self.requests: list[dict] = []
        self.flaky_left = 2
        self.replies: list[tuple[int, dict[str, str]]] = []
        self.hang = threading.Event()  # set: requests wait until it is cleared (or the server closes)
        self.released = threading.Event()
        self.arrived: list[float] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.arrived.append(time.monotonic())
                    fake.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    scripted = fake.replies.pop(0) if fake.replies else None
                while fake.hang.is_set() and not fake.released.wait(0.05):
                    pass
                headers: dict[str, str] = {}
                if scripted:
                    status, headers = scripted
                    payload: dict = {"error": {"message": f"scripted {status}", "type": "server_error"}}
                else:
                    status, payload = fake.answer(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        if path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, float(t.count("a"))]}
                for i, t in enumerate(texts)
            ]
            return 200, {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        messages = body["messages"]
        last = messages[-1]["content"]
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
        refusal, content = None, None
        if "FLAKY" in text:
            with self.lock:
                if self.flaky_left > 0:
                    self.flaky_left -= 1
                    return 500, {"error": {"message": "try again", "type": "server_error"}}
        if "REFUSE" in text:
            refusal = "I can't help with that."
        elif "GARBAGE" in text:
            content = "I think it is pretty good"
        elif m := re.search(r"Reference answer: (.*?)\n\nModel answer: (.*)", text, re.S):
            score = 1.0 if m.group(1).strip() == m.group(2).strip() else 0.0
            if "OUT_OF_RANGE" in text:
                score = 7.0
            content = json.dumps(
                {"steps": [{"description": "compare", "conclusion": "done"}], "result": score}
            )
        elif "Statement:" in text:
            label = "positive" if "love" in text else "negative" if "hate" in text else "neutral"
            content = json.dumps({"result": label})
        else:
            content = json.dumps({"result": 0.5})
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-judge-1",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
