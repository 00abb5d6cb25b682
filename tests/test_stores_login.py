"""The preflight of a tracking server with logins: not answering, credentials refused (401) and
not allowed (403) are each one line, exit 2, and nothing is written.

A small HTTP server plays MLflow's login app here, answering as MLflow 3.17's basic-auth app does
(tests/test_distributed.py runs the real one); it records every request, so the tests can prove
the preflight only reads.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.bad_input_helpers import closed_port
from vae_lab.config import Settings
from vae_lab.errors import VaeLabError
from vae_lab.stores import check_stores

USERS = {
    "admin": ("Admin-pw-0123456", True),
    "worker": ("Worker-pw-0123456", False),
    "reader": ("Reader-pw-0123456", False),
}
PERMISSIONS = {"worker": "EDIT", "reader": "READ"}


class FakeLoginServer(BaseHTTPRequestHandler):
    requests: list[tuple[str, str]] = []
    experiments = {"shared": "1"}
    models = {"shared"}

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_POST(self) -> None:
        self.requests.append(("POST", self.path))
        self.answer(500, {"error": "the preflight must not write"})

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path))
        user = self.user()
        if user is None:
            return self.answer(401, "You are not authenticated.", "text/plain")
        path, query = urlsplit(self.path).path, {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if path == "/api/2.0/mlflow/experiments/search":
            return self.answer(200, {"experiments": []})
        if path == "/api/2.0/mlflow/users/current":
            return self.answer(200, {"user": {"id": 1, "username": user, "is_admin": USERS[user][1]}})
        if path == "/api/2.0/mlflow/experiments/get-by-name":
            found = self.experiments.get(query["experiment_name"])
            return (
                self.answer(200, {"experiment": {"experiment_id": found}})
                if found
                else self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})
            )
        if path == "/api/2.0/mlflow/registered-models/get":
            return self.answer(200 if query["name"] in self.models else 404, {})
        if path == "/api/3.0/mlflow/users/permissions/get":
            permission = "MANAGE" if USERS[query["username"]][1] else PERMISSIONS[query["username"]]
            return self.answer(200, {"allowed": permission != "READ", "permission": permission})
        self.answer(404, {})

    def user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return name if USERS.get(name, ("",))[0] == password else None

    def answer(self, code: int, body, kind: str = "application/json") -> None:
        data = (json.dumps(body) if kind == "application/json" else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLoginServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def preflight(url: str, monkeypatch, user: str | None, password: str | None = None, experiment: str = "shared") -> None:
    for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("NETRC", "/nonexistent")  # no netrc of the machine answers for the test
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    check_stores(Settings(mlflow_tracking_uri=url), optuna=False, experiment=experiment)


@pytest.mark.parametrize(
    ("user", "password", "said"),
    [
        (None, None, "wants a login and none was given (HTTP 401)"),
        ("worker", "wrong-password", "refused the credentials of user 'worker' (HTTP 401)"),
        (
            "reader",
            USERS["reader"][0],
            "would not allow user 'reader' to write runs to experiment 'shared' (HTTP 403: it may only READ)",
        ),
    ],
    ids=["no-credentials", "wrong-password", "read-only"],
)
def test_a_refused_login_is_one_line_naming_the_cause_and_only_reads(server, monkeypatch, user, password, said):
    FakeLoginServer.requests.clear()
    with pytest.raises(VaeLabError) as error:
        preflight(server, monkeypatch, user, password)
    message = str(error.value)
    assert said in message and "\n" not in message, message
    assert message.startswith(f"MLflow tracking store {server}")
    assert "MLFLOW_TRACKING_USERNAME" in message or "MLFLOW_TRACKING_PASSWORD" in message or "EDIT" in message
    assert (password or "\x00") not in message
    assert FakeLoginServer.requests and all(method == "GET" for method, _ in FakeLoginServer.requests)


@pytest.mark.parametrize("user", ["worker", "admin"])
def test_a_worker_or_the_admin_passes(server, monkeypatch, user):
    preflight(server, monkeypatch, user, USERS[user][0])


def test_a_read_only_user_may_start_a_new_study(server, monkeypatch):
    """MLflow lets every user create experiments (and then manage them) when workspaces are off."""
    preflight(server, monkeypatch, "reader", USERS["reader"][0], experiment="brand-new")


def test_a_server_that_is_not_answering_is_one_line(monkeypatch):
    with pytest.raises(VaeLabError) as error:
        preflight(f"http://127.0.0.1:{closed_port()}", monkeypatch, "worker", USERS["worker"][0])
    assert "is not answering (connection refused)" in str(error.value) and "\n" not in str(error.value)


def test_credentials_in_the_uri_are_refused_before_any_request(server, monkeypatch):
    FakeLoginServer.requests.clear()
    url = server.replace("http://", "http://worker:Worker-pw-0123456@")
    with pytest.raises(VaeLabError) as error:
        preflight(url, monkeypatch, None)
    assert "MLFLOW_TRACKING_PASSWORD" in str(error.value) and "Worker-pw-0123456" not in str(error.value)
    assert FakeLoginServer.requests == []
