"""GET (and HEAD) /calendar/{token}.ics: a secret calendar feed (rotateCalendarFeed).

404, the same plain answer, for a token that is unknown, malformed or rotated away.
Calendar apps poll a feed every few minutes to hours: the body carries a strong ETag
(its SHA-256) and Last-Modified, is cacheable by the client only (`private`: the URL is
a secret, shared caches must not keep it), and a matching If-None-Match gets a 304
without the body. If-Modified-Since alone is not answered with a 304: a booking that
leaves the feed's window changes the body without a newer modification time.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from domain.notifications import calendar_feeds

CACHE_CONTROL = "private, max-age=300"
MEDIA_TYPE = "text/calendar; charset=utf-8"


async def calendar_feed(request: Request) -> Response:
    token = request.path_params["token"]
    now = datetime.now(UTC)
    async with request.app.state.reader.connect() as conn:
        feed = await calendar_feeds.feed_for(conn, token, now)
    if feed is None:
        return PlainTextResponse(
            "No such calendar.", status_code=404, headers={"cache-control": "no-store"}
        )
    digest = base64.urlsafe_b64encode(hashlib.sha256(feed.body).digest()).rstrip(b"=")
    etag = f'"{digest.decode()}"'
    headers = {
        "etag": etag,
        "cache-control": CACHE_CONTROL,
        # Never after the response's Date (RFC 9110 8.8.2.1): the database's clock may run
        # a little ahead of this process's.
        "last-modified": format_datetime(min(feed.last_modified, now).astimezone(UTC), usegmt=True),
        "x-content-type-options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["content-length"] = str(len(feed.body))
        return Response(media_type=MEDIA_TYPE, headers=headers)
    return Response(feed.body, media_type=MEDIA_TYPE, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): `*`, or any listed tag equal to
    ours with or without W/."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


# Starlette answers HEAD on every GET route.
CALENDAR_FEED_ROUTES: list[BaseRoute] = [Route(calendar_feeds.ROUTE, calendar_feed)]
