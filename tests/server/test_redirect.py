"""A resume handle's ``redirect_url`` is an absolute http(s) URL, refused at the call otherwise."""

from __future__ import annotations

import pytest

import tarry
from tests.conftest import LIMIT
from tests.server.test_http import Served, resume_url

REFUSED = ["javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,<script>1</script>",
           "/thanks", "//evil.example/x", "shop.example/thanks", "ftp://shop.example/x", "https://",
           "https://shop.example/\nSet-Cookie: x=1", " https://shop.example/", "", 42]  # fmt: skip


async def test_only_http_and_https_urls_are_accepted(app: tarry.Tarry) -> None:
    outcomes: list[str] = []

    @app.function(trigger="links/make")
    async def links(ctx: tarry.Context) -> None:
        for index, url in enumerate(REFUSED):
            try:
                await ctx.step.resume_url(f"bad-{index}", redirect_url=url)  # type: ignore[arg-type]
                outcomes.append(f"accepted {url!r}")
            except ValueError as err:
                outcomes.append(str(err))
        for url in ("https://shop.example/thanks?order=1", "http://127.0.0.1:3000/done"):
            handle = await ctx.step.resume_url(url, redirect_url=url)
            outcomes.append(f"accepted {handle.redirect_url}")

    async with app:
        await app.send(tarry.Event("links/make"))
        await app.idle(timeout=LIMIT)
    refused, accepted = outcomes[: len(REFUSED)], outcomes[len(REFUSED) :]
    assert all("redirect_url" in o and "absolute http:// or https:// URL" in o for o in refused), refused
    assert accepted == ["accepted https://shop.example/thanks?order=1", "accepted http://127.0.0.1:3000/done"]


@pytest.mark.parametrize("url", ["https://shop.example/thanks", "http://shop.example/t"])
async def test_a_browser_is_sent_to_an_accepted_url(served: Served, url: str) -> None:
    app, client = served
    _, path = await resume_url(app, client, redirect=url)
    response = await client.get(path, headers={"accept": "text/html"})
    assert response.status_code == 303 and response.headers["location"] == url
