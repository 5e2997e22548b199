"""Filling OTLP ``AnyValue`` messages from Python values, for the decoder tests."""

from __future__ import annotations


def set_value(msg, v) -> None:
    """Fill an AnyValue. A dict, or a list of (key, value) pairs (duplicates kept), is a kvlist;
    another list an array (an empty one is set, not absent); None leaves the message empty."""
    if isinstance(v, bool):
        msg.bool_value = v
    elif isinstance(v, int):
        msg.int_value = v
    elif isinstance(v, float):
        msg.double_value = v
    elif isinstance(v, bytes):
        msg.bytes_value = v
    elif isinstance(v, str):
        msg.string_value = v
    elif isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, tuple) for x in v)):
        for k, x in (v.items() if isinstance(v, dict) else v):
            kv = msg.kvlist_value.values.add()
            kv.key = k
            set_value(kv.value, x)
    elif isinstance(v, list):
        arr = msg.array_value
        arr.SetInParent()
        for x in v:
            set_value(arr.values.add(), x)
