"""The broker's one exception family, mapped to npm-style JSON errors in app.py.

Every error body carries a stable `code` next to `error`/`message`: clients (the action, scripts)
choose what to do by the code, never by the sentence, which may be reworded.
"""

from __future__ import annotations

# The code an error gets when the place that raises it names none.
_STATUS_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 409: "conflict", 413: "too-large", 429: "rate-limited",
                 500: "internal", 503: "unavailable"}


class RegistryError(Exception):
    """An error the client sees: `error` is what the npm CLI prints, so it must say what to do."""

    def __init__(self, status: int, error: str, *, code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code or _STATUS_CODES.get(status, f"http-{status}")
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict:
        return {"code": self.code, "error": self.error, "message": self.error, **self.extra}


def bad_request(error: str, code: str | None = None) -> RegistryError:
    return RegistryError(400, error, code=code)


def unauthorized(error: str, challenge: str = "Bearer", code: str | None = None) -> RegistryError:
    return RegistryError(401, error, code=code, headers={"www-authenticate": challenge})


def otp_required(error: str = "This operation requires a one-time password from your authenticator.") -> RegistryError:
    # The CLI matches the header value exactly: "OTP" with no parameters.
    return RegistryError(401, error, code="otp.required", headers={"www-authenticate": "OTP"})


def forbidden(error: str, code: str | None = None) -> RegistryError:
    return RegistryError(403, error, code=code)


def not_found(error: str, code: str | None = None) -> RegistryError:
    return RegistryError(404, error, code=code)


def conflict(error: str, code: str | None = None) -> RegistryError:
    return RegistryError(409, error, code=code)
