"""The seed's logging, kept: the same line format, to the terminal and to a file.

Every gunicorn worker appends to the same file, one whole line per write. Rotation is left to logrotate (or
the like), which renames the file: each worker notices and opens a new one. Rotating from inside the workers
(RotatingFileHandler) let each rename a file that the others still wrote to, and lines were lost.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOGGER_NAME = "nosetrack"


def setup_logging(log_file: str | None = "webserver.log", level: str = "INFO") -> logging.Logger:
    """Send nosetrack's records to stderr and to `log_file` ('' for none)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.handlers.WatchedFileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
