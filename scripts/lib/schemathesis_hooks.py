"""Schemathesis hooks for scripts/test: the one rule of Baton's API that docs/openapi.json cannot state.

Names (keys, holders, systems, rounds, candidates) are limited to 256 bytes of UTF-8 and metadata to 4096 bytes.
JSON Schema's maxLength counts characters, so the document says 256 (4096) characters: exact for ASCII, while a
value of at most that many characters whose UTF-8 is longer is valid by the document and answered 400 by the
service. Such values are not generated (docs/http.md says why); every other value is, in every phase.

One more restriction is of the test, not of the API: a long poll (`wait_ms`) on a key that an earlier case took
for a long ttl legitimately waits up to `wait_ms`, past schemathesis's 10-second read timeout. Waits longer than
MAX_WAIT_MS are not generated; shorter ones, which exercise the same code, are.
"""

import schemathesis

NAME_BYTES = 256
METADATA_BYTES = 4096
MAX_WAIT_MS = 3000


def _past_byte_limit(value, limit):
    """Whether a string is within `limit` characters but over `limit` bytes of UTF-8."""
    if not isinstance(value, str) or len(value) > limit:
        return False
    return len(value.encode("utf-8", "surrogatepass")) > limit


@schemathesis.hook
def filter_case(context, case):
    values = []
    values.extend((value, NAME_BYTES) for value in (case.path_parameters or {}).values())
    values.append(((case.query or {}).get("candidate"), NAME_BYTES))
    if isinstance(case.body, dict):
        wait = case.body.get("wait_ms")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > MAX_WAIT_MS:
            return False
        values.append((case.body.get("holder"), NAME_BYTES))
        values.append((case.body.get("metadata"), METADATA_BYTES))
    return not any(_past_byte_limit(value, limit) for value, limit in values)
