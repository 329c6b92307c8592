"""The seed's logging, kept: the same line format, to the terminal and to a (now rotating) file."""

from __future__ import annotations

import logging
import logging.handlers
import sys

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOGGER_NAME = "nosetrack"


def setup_logging(log_file: str | None = "webserver.log", level: str = "INFO") -> logging.Logger:
    """Send nosetrack's records to stderr and to `log_file` (rotated at 10 MB, 5 kept; '' for none)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
