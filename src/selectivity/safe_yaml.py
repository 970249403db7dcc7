"""YAML read safely: configs, claims files and run records, with bounds on what a file may cost.

``yaml.safe_load`` builds no objects of the file's choosing, but it still expands aliases: a
"billion laughs" value of a few lines becomes gigabytes. Here a YAML text is read only if it is at
most :data:`MAX_BYTES` long, holds no alias (``*name``) and at most :data:`MAX_EVENTS` parser events;
libyaml's C parser is used where PyYAML has it. :func:`short_repr` keeps error messages one short
line whatever the value.
"""

from __future__ import annotations

import yaml

__all__ = ["MAX_BYTES", "MAX_EVENTS", "UnsafeYaml", "load_yaml", "short_repr"]

#: A config or a claims file is a few kilobytes; a run's config.yaml too.
MAX_BYTES = 1_000_000
#: Parser events (scalars, mapping and sequence starts and ends) a text may hold.
MAX_EVENTS = 200_000

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnsafeYaml(yaml.YAMLError, ValueError):
    """A YAML text refused before it is built: too long, an alias, too many nodes."""


def load_yaml(text: str, what: str = "the YAML text"):
    """``yaml.safe_load(text)`` within bounds; :class:`UnsafeYaml` (a ``yaml.YAMLError``) names ``what``
    and the rule it broke."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_BYTES:
        raise UnsafeYaml(f"{what} is {size / 1e6:.1f} MB: at most {MAX_BYTES / 1e6:g} MB of YAML is read "
                         "(a config or claims file is a few KB)")
    for count, event in enumerate(yaml.parse(text, Loader=_LOADER), start=1):
        if isinstance(event, yaml.AliasEvent):
            raise UnsafeYaml(f"{what}, line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                             "accepted (they can expand without bound); write the value out")
        if count > MAX_EVENTS:
            raise UnsafeYaml(f"{what} holds more than {MAX_EVENTS} YAML nodes: not a config or claims file")
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, the C one where available


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with its full length said: an error message stays
    one short line whatever a file holds.

    Example::

        >>> short_repr("x" * 100, 12)
        "'xxxxxxxxxx... (102 characters)"
    """
    text = repr(value) if not isinstance(value, (list, dict, tuple)) or len(value) < 50 else \
        f"<{type(value).__name__} of {len(value)} items>"
    return text if len(text) <= limit else f"{text[:limit - 1]}... ({len(text)} characters)"
