"""The settings a rule test runs on: the daemon's, or the file it names, with its own keys over
them (`settings: {inventory: {on_order_source: agent}}`), so a test decides as the daemon would."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.config import Settings, load_settings
from agent.errors import ConfigError


def check_overrides(sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError naming the first unknown section or key, or bad value."""
    for section, keys in sections.items():
        _checked(_section(section), section, keys)


def resolve_settings(
    base: Settings, file: Path | None, sections: Mapping[str, Mapping[str, Any]]
) -> Settings:
    """`base` (or the settings `file`, without the environment: a test runs the same
    everywhere) with the `sections` keys over it; ConfigError when a key is wrong."""
    settings = load_settings(file, environ={}) if file is not None else base
    update: dict[str, BaseModel] = {}
    for section, keys in sections.items():
        current: BaseModel = getattr(settings, _known(section))
        update[section] = _checked(type(current), section, {**current.model_dump(), **keys})
    return settings.model_copy(update=update)


def _known(section: str) -> str:
    if section not in Settings.model_fields:
        known = ", ".join(Settings.model_fields)
        raise ConfigError(f"no settings section {section!r} (known: {known})")
    return section


def _section(section: str) -> type[BaseModel]:
    model = Settings.model_fields[_known(section)].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def _checked(model: type[BaseModel], section: str, keys: Mapping[str, Any]) -> BaseModel:
    try:
        return model.model_validate(dict(keys))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"[{section}] {where}: {error['msg']}") from exc
