"""The registry of message types: a type name maps to its message model.

The core types register through the same method that extensions use. The
core registry is frozen; ``CORE_REGISTRY.extend(...)`` or a new
``MessageRegistry`` admits extension types without forking::

    registry = CORE_REGISTRY.extend()

    @registry.register
    class LoyaltyPointsQuery(Message):
        type: Literal["x-org.example.loyalty.points"]
        body: LoyaltyPointsQueryBody
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from ._errors import UnknownMessageType
from ._messages import CORE_MESSAGE_TYPES, MAX_TYPE_LENGTH, Message

__all__ = ["MessageRegistry", "CORE_REGISTRY", "EXTENSION_TYPE_PATTERN"]

M = TypeVar("M", bound=type[Message])

_CORE_NAME = re.compile(r"[a-z]+(\.[a-z]+)*")
# A DNS label (RFC 1035 §2.3.1, lower case): 1-63 letters, digits and inner hyphens.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
#: Extension types are namespaced by a reverse domain the author controls:
#: ``x-`` + at least two domain labels + a name of one or more labels, so at least
#: three labels in all (x-org.example.loyalty.points; not x-org.points). With
#: MAX_TYPE_LENGTH, this is the whole rule (PROTOCOL.md §9).
EXTENSION_TYPE_PATTERN = re.compile(rf"x-{_LABEL}(?:\.{_LABEL}){{2,}}")


class MessageRegistry(Mapping[str, type[Message]]):
    """A mapping from message type names to message models."""

    def __init__(self, *models: type[Message], frozen: bool = False) -> None:
        self._types: dict[str, type[Message]] = {}
        self._frozen = False
        for model in models:
            self.register(model)
        self._frozen = frozen

    def register(self, model: M) -> M:
        """Add a message model (usable as a class decorator)."""
        if self._frozen:
            raise TypeError("this registry is frozen; use .extend() to make one you can add to")
        if not (isinstance(model, type) and issubclass(model, Message)) or not model.message_type:
            raise TypeError("register a Message subclass whose type is a Literal string")
        name = model.message_type
        is_core = model in CORE_MESSAGE_TYPES
        if not is_core and (len(name) > MAX_TYPE_LENGTH
                            or not EXTENSION_TYPE_PATTERN.fullmatch(name)):
            raise ValueError(
                f"extension type {name!r} must be namespaced: x-<reverse domain>.<name>, "
                f"like x-org.example.loyalty.points (at least three lower-case DNS labels, "
                f"at most {MAX_TYPE_LENGTH} characters)"
            )
        if is_core and not _CORE_NAME.fullmatch(name):  # pragma: no cover - our own names
            raise ValueError(f"bad core type name {name!r}")
        if name in self._types and self._types[name] is not model:
            raise ValueError(f"message type {name!r} is already registered")
        self._types[name] = model
        return model

    def extend(self, *models: type[Message]) -> MessageRegistry:
        """A new, open registry with these types and ``models``."""
        return MessageRegistry(*self._types.values(), *models)

    def only(self, names: Iterable[str]) -> MessageRegistry:
        """A frozen registry of just the types ``names``: what one receiver takes.
        Every name must be registered here (ValueError otherwise)."""
        wanted = list(dict.fromkeys(names))
        missing = [name for name in wanted if name not in self._types]
        if missing:
            raise ValueError(f"message types {missing} are not registered; register their "
                             f"models first")
        return MessageRegistry(*(self._types[name] for name in wanted), frozen=True)

    def lookup(self, name: object, **context: str | None) -> type[Message]:
        """The model for ``name``, or :class:`UnknownMessageType`."""
        # Untrusted tag strings are checked before lookup.
        model = self._types.get(name) if isinstance(name, str) else None
        if model is None:
            raise UnknownMessageType(
                f"message type {str(name)[:100]!r} is not supported here", **context
            )
        return model

    def __getitem__(self, name: str) -> type[Message]:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        return f"MessageRegistry({sorted(self._types)})"


#: The core types of VRM/1.
CORE_REGISTRY = MessageRegistry(*CORE_MESSAGE_TYPES, frozen=True)
