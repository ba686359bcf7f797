"""The ``_sync`` twins: one helper makes a blocking method from an async one, for the app and for steps.

Logic lives once, in the async method; a twin only hands the call to its
object's ``_bridge``, which knows which event loop to run it on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Bridged(Protocol):
    def _bridge(self, name: str, call: Callable[[Any], Coroutine[Any, Any, T]]) -> T: ...


S = TypeVar("S", bound=Bridged)


def sync_twin(method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]]) -> Callable[Concatenate[S, P], T]:
    def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._bridge(method.__name__, lambda target: method(target, *args, **kwargs))

    twin.__name__ = method.__name__ + "_sync"
    twin.__doc__ = f"The blocking twin of ``{method.__name__}``: for plain ``def`` code, from any thread."
    return twin
