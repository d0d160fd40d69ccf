"""Logging set-up: structlog events as JSON lines (not a terminal) or readable console lines.

Standard-library records (paho, SQLAlchemy, ...) at warning and above go through the same pipeline.

Import this module before anything else imports structlog (`agent.cli.main` does): structlog
imports rich, when it is installed, for tracebacks this module never asks for (plain ones in the
console, data in JSON, no local variables). rich is installed for the CLI's tables, and with
pygments it cost every daemon 5 MB and 50 ms at start; so rich is hidden from that one import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO


def _import_structlog_without_rich() -> None:
    """structlog's dev and tracebacks modules look for rich once, at their import: hidden then,
    they fall back to what this module asks for anyway. A `rich` already imported stays."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]  # the CLI's commands import it as usual


_import_structlog_without_rich()

import structlog  # noqa: E402
from structlog.typing import EventDict, Processor, WrappedLogger  # noqa: E402

from agent.errors import ConfigError  # noqa: E402

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS: Final = ("auto", "json", "console")
# Tracebacks as data, without local variables: those may hold secrets.
_TRACEBACKS: Final = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


class _NamedWriter(structlog.WriteLogger):
    """structlog's plain writer with the name it was asked for (`get_logger(__name__)`)."""

    def __init__(self, file: TextIO | None, name: str) -> None:
        super().__init__(file)
        self.name = name


def _writer_factory(stream: TextIO | None) -> Callable[..., _NamedWriter]:
    # The process's stdout/stderr are looked up per logger, as print() does: test runners and
    # daemonisers swap them, and a logger must not keep writing to a closed one.
    to_stdout = stream is None or stream in (sys.stdout, sys.__stdout__)
    to_stderr = stream in (sys.stderr, sys.__stderr__)

    def current() -> TextIO:
        if to_stdout:
            return sys.stdout
        if to_stderr:
            return sys.stderr
        assert stream is not None
        return stream

    def make(*args: Any) -> _NamedWriter:
        return _NamedWriter(current(), str(args[0]) if args else "")

    return make


def _add_logger_name(logger: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event.setdefault("logger", name)
    return event


class _ToStructlog(logging.Handler):
    """Hands standard-library records to structlog, so every line has one format."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            logger.log(record.levelno, record.getMessage(), exc_info=record.exc_info or None)
        except Exception:  # logging must never take the agent down; report as logging does
            self.handleError(record)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog (and route stdlib logging to it); safe to call again to change it."""
    numeric = LEVELS.get(level.lower())
    if numeric is None:
        raise ConfigError(f"log.level: expected one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"log.format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    terminal = _is_terminal(stream or sys.stdout)
    as_json = fmt == "json" or (fmt == "auto" and not terminal)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        # Plain tracebacks: rich's would print local variables, and those may hold secrets.
        else structlog.dev.ConsoleRenderer(
            colors=terminal, exception_formatter=structlog.dev.plain_traceback
        )
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if as_json:
        processors.append(_TRACEBACKS)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_writer_factory(stream),
        # Not cached: a second call (tests, a reload) must reach loggers already in use.
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(max(numeric, logging.WARNING))


def _route_standard_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStructlog)]:
        root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    root.setLevel(level)
