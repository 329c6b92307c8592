"""The seed's logging, kept: the same line format, to the terminal and to a file.

Every gunicorn worker appends to the same file, one whole line per write. Rotation is left to logrotate (or
the like), which renames the file: each worker notices and opens a new one. Rotating from inside the workers
(RotatingFileHandler) let each rename a file that the others still wrote to, and lines were lost.

The threads that answer requests only put their records on a queue; one thread per process writes them to
the terminal and the file (the standard library's QueueHandler and QueueListener). With the handlers' locks
taken by every request thread, waiting for them was the largest part of a request's own CPU (py-spy under
`bench.frontends`' load).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOGGER_NAME = "nosetrack"


class _Writer(logging.handlers.QueueHandler):
    """A QueueHandler that owns its listener: closing it writes what is queued and stops the thread."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__(queue.SimpleQueue())
        self.listener = logging.handlers.QueueListener(self.queue, *handlers)
        self.listener.start()
        atexit.register(self.close)

    def close(self) -> None:
        if self.listener._thread is not None:
            self.listener.stop()
            for handler in self.listener.handlers:
                handler.close()
        super().close()


def setup_logging(log_file: str | None = "webserver.log", level: str = "INFO") -> logging.Logger:
    """Send nosetrack's records to stderr and to `log_file` ('' for none), from a thread of their own."""
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
    logger.addHandler(_Writer(handlers))
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
