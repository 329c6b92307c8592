"""A client's JSON body, parsed so that whatever the client sent fails as one ValueError: a 400, not a 500.

`json.loads` already answers bad syntax and bad UTF-8/16/32 with a ValueError; nesting deeper than the
interpreter's recursion limit (`[[[[...`, a few kilobytes) escapes as a RecursionError.
"""

from __future__ import annotations

import json
from typing import Any


class InvalidJson(ValueError):
    """The body is not a JSON document; the message says why, for the client."""


def load_json(body: bytes) -> Any:
    """The document in `body` (UTF-8, UTF-16 or UTF-32, as JSON allows); InvalidJson otherwise."""
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidJson("it is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidJson(str(error)) from None
