"""Refuse secrets in release manifests.

A release is stored, diffed, shown in reports and shared between teams; a key pasted into it leaks
everywhere. Secrets reach Sluice only as environment-variable *names* (``api_key_env``,
``headers_env``), so their values never enter a digest or a database. ``${VAR}`` interpolation is
refused too: it would make the same file mean different releases on different machines.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.errors import ConfigError, Location
from sluice.yamlio import LineMap, dotted, line_of

# Shapes of well-known credentials. Deliberately specific: a false alarm blocks a release.
KEY_PATTERNS = [
    re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI, Anthropic, Stripe
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"),  # Google
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]
SECRET_FIELD_NAMES = {
    "api_key", "apikey", "password", "passwd", "token", "access_token", "auth_token", "secret",
    "client_secret", "secret_key", "private_key", "authorization", "bearer",
}
INTERPOLATION = re.compile(r"\$\{[^}]*\}")
HINT = "put it in an environment variable and give its NAME with api_key_env (headers_env for http targets)"


def refuse_secrets(data: Any, lines: LineMap, file: str) -> None:
    """Raise ConfigError at the first literal secret or ``${VAR}`` in the raw manifest.

    Runs before model validation so a key pasted under a misspelt field is still caught. The
    message never repeats the value.
    """
    for path, key, value in _leaves(data, ()):
        where = Location(file=file, line=line_of(lines, path), field=dotted(path) or None)
        if isinstance(value, str) and INTERPOLATION.search(value):
            raise ConfigError("environment interpolation ('${...}') is not supported: secrets come only by "
                              "environment-variable name (api_key_env, headers_env)", where)
        if isinstance(value, str) and any(p.search(value) for p in KEY_PATTERNS):
            raise ConfigError(f"looks like a literal API key or token; {HINT}", where)
        if _is_secret_name(key) and value not in (None, "") and not isinstance(value, (dict, list, bool)):
            raise ConfigError(f"'{key}' must not hold a literal value; {HINT}", where)


def _is_secret_name(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    name = key.strip().lower().replace("-", "_")
    return name in SECRET_FIELD_NAMES or name.endswith(("_api_key", "_apikey", "_password", "_secret"))


def _leaves(value: Any, path: tuple):
    """(path, key, value) for every scalar, with ``key`` the mapping key it sits under.

    Values under a ``*_env`` mapping are environment-variable names by contract, so a header
    called ``Authorization`` there is fine; its value is still checked against key patterns.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            under_env = isinstance(k, str) and k.endswith("_env")
            if under_env and isinstance(v, dict):
                for hk, hv in v.items():
                    yield path + (k, hk), None, hv
                continue
            if isinstance(v, (dict, list)):
                yield from _leaves(v, path + (k,))
            else:
                yield path + (k,), k, v
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                yield from _leaves(v, path + (i,))
            else:
                yield path + (i,), None, v
