"""Master-data fields inside a fact: swapping one subject's old fields for its new ones."""

from __future__ import annotations

from collections.abc import Mapping

from agent.model import Value


def swap_fields(
    fields: dict[str, Value], old: Mapping[str, Value], new: Mapping[str, Value]
) -> None:
    """Replace in `fields` the subject's master data `old` by `new` (a reload).

    A field holding the old master-data value came from master data: it takes the new value,
    or goes if master data no longer gives it. A field a message set otherwise stays (a message's
    fields win over master data, as when the fact was built), and so does one master data adds
    under a name a message already set.
    """
    for name, value in old.items():
        if name not in new and name in fields and fields[name] == value:
            del fields[name]
    for name, value in new.items():
        came_from_masterdata = name in old and fields.get(name) == old[name]
        if name not in fields or came_from_masterdata:
            fields[name] = value
