"""Database URLs as they may be shown: the password hidden, in the userinfo and in the query.

Everything that prints or raises a database URL goes through ``redact_url``;
text that may echo parts of a URL (a driver's error) goes through ``scrub``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

HIDDEN = "***"
SECRET_PARAMETERS = ("password", "sslpassword")
_SECRET_QUERY = re.compile(r"(?P<lead>(?:^|[?&;])(?:" + "|".join(SECRET_PARAMETERS) + r")=)(?P<value>[^&;#]*)")


def redact_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@``, ``?password=``, ``?sslpassword=``) replaced by ``***``."""
    if not isinstance(url, str):
        return repr(url)
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL at all: hide whatever could be credentials
        return HIDDEN + url[url.rindex("@") :] if "@" in url else _SECRET_QUERY.sub(r"\g<lead>" + HIDDEN, url)
    authority_end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if found != -1:
            authority_end = min(authority_end, found)
    authority, tail = rest[:authority_end], rest[authority_end:]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    path, question, query = tail.partition("?")
    if question:
        tail = path + question + _SECRET_QUERY.sub(r"\g<lead>" + HIDDEN, query)
    return f"{scheme}://{authority}{tail}"


def secrets_in(url: str) -> list[str]:
    """The passwords ``url`` holds, as written and percent-decoded, longest first."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if password:
        found.update((password, unquote(password)))
    if parts is not None:
        for match in _SECRET_QUERY.finditer(parts.query):
            if match["value"]:
                found.update((match["value"], unquote(match["value"])))
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (such as a driver's error message) with ``url`` and every password in it hidden."""
    text = text.replace(url, redact_url(url))
    for secret in secrets_in(url):
        text = text.replace(secret, HIDDEN)
    return text
