"""GET /-/metrics: the Prometheus text exposition.

Metrics show a registry's traffic (how many publishes, exchanges, refusals), so they are not public:
with STAGEGATE_METRICS_TOKEN set, a scrape must send it as a bearer token (from anywhere); without
it, only a loopback client (a scraper or sidecar on the same host) that did not come through a proxy
gets them.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.responses import Response

from .. import metrics
from ..errors import forbidden, unauthorized
from ..store import stats
from .context import Broker
from .http import Req


# A request a proxy forwarded comes from the proxy's address, loopback when the proxy runs on the same
# host: one that carries a forwarding header is not a local client, whatever its address.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")


def scrape(b: Broker, req: Req) -> Response:
    allow_scrape(b.settings.metrics_token, req)
    return Response(metrics.exposition(lambda: _database_families(b)), media_type=metrics.CONTENT_TYPE)


def allow_scrape(token: str | None, req: Req) -> None:
    if token:
        scheme, _, sent = (req.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            raise unauthorized("send the metrics token (STAGEGATE_METRICS_TOKEN) as `Authorization: Bearer <token>`")
    elif not _loopback(req.client) or any(h in req.headers for h in PROXY_HEADERS):
        raise forbidden("/-/metrics answers loopback clients only; set STAGEGATE_METRICS_TOKEN to scrape it "
                        "from another host (or through a proxy) with that bearer token")


def _loopback(client: str | None) -> bool:
    try:
        return client is not None and ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False


def _database_families(b: Broker):
    with b.db.read() as conn:
        return metrics.stage_families(stats.version_states(conn), stats.pending_stages(conn))
