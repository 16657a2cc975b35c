"""The action's input validation: a plain-http registry only on loopback; the fork pull request test."""

import json

import pytest

from action.inputs import InputError, Inputs, read_inputs
from action.oidc import fork_pull_request


@pytest.mark.parametrize("registry", [
    "http://127.0.0.1:4873", "http://127.8.9.10/", "http://[::1]:1", "http://localhost:4873/", "http://LOCALHOST/",
    "https://npm.example.com", "https://203.0.113.7:8443/npm/", "https://[2001:db8::1]/",
])
def test_https_anywhere_and_http_on_loopback_are_accepted(registry):
    assert Inputs(registry=registry).registry.startswith(registry.rstrip("/"))


@pytest.mark.parametrize("registry", [
    "http://example.com", "http://example.com:4873/", "http://10.0.0.5/", "http://[2001:db8::1]:1/",
    "http://localhost.example.com/", "http://127.0.0.1.nip.io/", "http://0.0.0.0:4873/", "http://[::]/",
])
def test_plain_http_elsewhere_is_refused(registry, monkeypatch):
    monkeypatch.setenv("INPUT_REGISTRY", registry)
    with pytest.raises(InputError) as refused:
        read_inputs()
    assert str(refused.value) == (f"input registry: {registry} is "
                                  "plain http: the job's OIDC token would be sent in clear text. Use https (plain "
                                  "http only for localhost, 127.0.0.0/8 or ::1)")


@pytest.mark.parametrize("registry", ["ftp://npm.example.com/", "npm.example.com", "https:///path"])
def test_a_registry_that_is_not_an_http_url_is_refused(registry, monkeypatch):
    monkeypatch.setenv("INPUT_REGISTRY", registry)
    with pytest.raises(InputError, match="must be an http"):
        read_inputs()


def pull_request(head: dict | None, base: str = "acme/widget") -> dict:
    return {"pull_request": {"head": {"repo": head}, "base": {"repo": {"full_name": base}}}}


@pytest.mark.parametrize(("event_name", "event", "fork"), [
    ("pull_request", pull_request({"full_name": "mallory/widget", "fork": True}), True),
    ("pull_request", pull_request({"full_name": "mallory/widget"}), True),
    ("pull_request", pull_request(None), True),  # the fork was deleted
    ("pull_request", pull_request({"full_name": "acme/widget", "fork": False}), False),
    ("pull_request", pull_request({"full_name": "acme/widget", "fork": True}), False),  # acme/widget is a fork
    ("pull_request_target", pull_request({"full_name": "mallory/widget", "fork": True}), False),
    ("push", {}, False),
    ("pull_request", {"unexpected": True}, False),
])
def test_a_pull_request_from_a_fork_is_recognised(event_name, event, fork, monkeypatch, tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    monkeypatch.setenv("GITHUB_EVENT_NAME", event_name)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))
    assert fork_pull_request() is fork


def test_a_missing_event_file_is_not_a_fork(monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "absent.json"))
    assert fork_pull_request() is False
