"""A client of the review page (/-/review/) without a browser: httpx with a cookie jar, sending the
Origin a browser sends, reading the CSRF token out of the forms like a browser submits them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from .accounts import Account

CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def origin(registry: str) -> str:
    parts = urlsplit(registry)
    return f"{parts.scheme}://{parts.netloc}"


class ReviewClient:
    def __init__(self, registry: str) -> None:
        self.registry = registry
        self.http = httpx.Client(base_url=registry, headers={"origin": origin(registry)}, timeout=60,
                                 follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ReviewClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str) -> httpx.Response:
        return self.http.get("-/review/" + path.lstrip("/"))

    def csrf(self, path: str = "") -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        return CSRF.search(page.text).group(1)

    def post(self, path: str, fields: dict[str, str], **kwargs) -> httpx.Response:
        return self.http.post("-/review/" + path.lstrip("/"), data=fields, **kwargs)

    def signin(self, account: Account, otp: str | None = None, password: str | None = None) -> httpx.Response:
        csrf = self.csrf("signin")
        return self.post("signin", {"csrf": csrf, "username": account.name, "password": password or account.password,
                                    "otp": otp if otp is not None else account.otp()})

    def signed_in(self, account: Account) -> "ReviewClient":
        response = self.signin(account)
        assert response.status_code == 303 and response.headers["location"].endswith("/-/review/"), response.text
        return self

    def decide(self, stage_id: str, what: str, otp: str) -> httpx.Response:
        return self.post(f"stage/{stage_id}/{what}", {"csrf": self.csrf(f"stage/{stage_id}"), "otp": otp})
