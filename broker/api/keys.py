"""/-/npm/v1/keys: the public keys that verify the registry's signatures (`npm audit signatures`)."""

from __future__ import annotations

from starlette.responses import Response

from .context import Broker
from .http import Req, json_response


def keys(b: Broker, req: Req) -> Response:
    return json_response({"keys": [key.document() for key in b.keyring.public_keys()]})
