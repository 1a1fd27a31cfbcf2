"""The resolvers' exception_handler, typed: Powertools leaves the decorator unannotated, so a
handler registered through it would lose its signature to mypy (and a handler another one calls,
its return type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

Handler = TypeVar("Handler", bound="Callable[..., Response[str]]")


def exception_handler(
    app: APIGatewayRestResolver, exc_class: type[Exception] | list[type[Exception]]
) -> Callable[[Handler], Handler]:
    """Registers the decorated handler on app for exc_class, returning it unchanged (as Powertools does)."""
    return cast("Callable[[Handler], Handler]", app.exception_handler(exc_class))
