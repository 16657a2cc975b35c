"""The broker's one exception family, mapped to npm-style JSON errors in app.py."""

from __future__ import annotations


class RegistryError(Exception):
    """An error the client sees: `error` is what the npm CLI prints, so it must say what to do."""

    def __init__(self, status: int, error: str, *, headers: dict[str, str] | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict:
        return {"error": self.error, "message": self.error, **self.extra}


def bad_request(error: str) -> RegistryError:
    return RegistryError(400, error)


def unauthorized(error: str, challenge: str = "Bearer") -> RegistryError:
    return RegistryError(401, error, headers={"www-authenticate": challenge})


def otp_required(error: str = "This operation requires a one-time password from your authenticator.") -> RegistryError:
    # The CLI matches the header value exactly: "OTP" with no parameters.
    return RegistryError(401, error, headers={"www-authenticate": "OTP"})


def forbidden(error: str) -> RegistryError:
    return RegistryError(403, error)


def not_found(error: str) -> RegistryError:
    return RegistryError(404, error)


def conflict(error: str) -> RegistryError:
    return RegistryError(409, error)
