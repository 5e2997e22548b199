"""A small LLM-as-judge client for any OpenAI-compatible ``/chat/completions`` endpoint.

Used by the ``llm_judge`` evaluator and by the judge backends of groundedness, context relevance
and task completion. Temperature defaults to 0. Answers are cached by (model, temperature,
messages) — the rubric and the inputs are in the messages — in memory for the process and, when
``cache_dir`` is given, on disk as one JSON file per answer, so re-running a gate does not pay
for the same judgement twice. The endpoint's URL is not part of the key: the same model behind
another proxy gives the same cached answer.

A judge that fails (network, HTTP error, unparseable answer) raises ``JudgeError``; evaluators
turn that into an error result, never a score of zero.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import httpx

from sluice.digest import digest_of


class JudgeError(Exception):
    """The judge did not give a usable answer."""


_memory: OrderedDict[str, str] = OrderedDict()
_memory_lock = threading.Lock()
MEMORY_ENTRIES = 10_000


class JudgeClient:
    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None,
                 temperature: float = 0.0, max_tokens: int = 512, timeout_s: float = 60.0,
                 max_retries: int = 2, cache_dir: str | Path | None = None):
        if not base_url or not model:
            raise ValueError("a judge needs base_url and model")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self.calls = 0  # requests actually sent upstream (cache misses), for tests and reports

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The judge's reply text, from the cache when this exact question was asked before."""
        key = digest_of({"model": self.model, "temperature": self.temperature,
                         "max_tokens": self.max_tokens, "messages": messages}).split(":")[1]
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        text = self._request(messages)
        self._cache_put(key, text)
        return text

    def ask_json(self, system: str, user: str) -> dict[str, Any]:
        """Ask and parse the first JSON object in the reply (fenced or bare)."""
        text = self.complete([{"role": "system", "content": system},
                              {"role": "user", "content": user}])
        obj = find_json_object(text)
        if obj is None:
            raise JudgeError(f"judge reply holds no JSON object: {text[:200]!r}")
        return obj

    # --- transport -------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout_s)
            return self._http

    def _request(self, messages: list[dict[str, str]]) -> str:
        headers = {"content-type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise JudgeError(f"environment variable {self.api_key_env} is not set")
            headers["authorization"] = f"Bearer {key}"
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        url = f"{self.base_url}/chat/completions"
        last, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                backoff = 0.25 * 2 ** attempt if retry_after is None else retry_after
                time.sleep(min(10.0, backoff))
            retry_after = None
            try:
                resp = self._client().post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            self.calls += 1
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                retry_after = _seconds(resp.headers.get("retry-after"))
                continue
            if resp.status_code >= 400:
                raise JudgeError(f"judge returned HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise JudgeError(f"judge reply is not a chat completion: {resp.text[:200]}") \
                    from None
            if not isinstance(content, str) or not content.strip():
                raise JudgeError("judge reply is empty")
            return content
        raise JudgeError(f"judge unreachable after {self.max_retries + 1} attempts ({last})")

    # --- cache -----------------------------------------------------------------------------

    def _cache_get(self, key: str) -> str | None:
        with _memory_lock:
            if key in _memory:
                _memory.move_to_end(key)
                return _memory[key]
        if self.cache_dir:
            path = self.cache_dir / key[:2] / f"{key}.json"
            try:
                text = json.loads(path.read_text())["reply"]
            except (OSError, ValueError, KeyError):
                return None
            self._remember(key, text)
            return text
        return None

    def _cache_put(self, key: str, text: str) -> None:
        self._remember(key, text)
        if self.cache_dir:
            path = self.cache_dir / key[:2] / f"{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"model": self.model, "reply": text}))
            tmp.replace(path)

    @staticmethod
    def _remember(key: str, text: str) -> None:
        with _memory_lock:
            _memory[key] = text
            _memory.move_to_end(key)
            while len(_memory) > MEMORY_ENTRIES:
                _memory.popitem(last=False)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: in a code fence, or the first ``{...}`` that parses."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for cand in candidates:
        for start in [m.start() for m in re.finditer(r"\{", cand)][:20]:
            try:
                obj, _ = decoder.raw_decode(cand[start:])
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


_SCORE_TEXT = re.compile(r"score\W{0,3}\s*([-+]?\d+(?:\.\d+)?)\s*(?:/|out of)?\s*(\d+(?:\.\d+)?)?",
                         re.I)
# In prose only an opening PASS/FAIL counts: a reply opening "No idea" is not a verdict.
_VERDICT = re.compile(r"^\W*(pass|passed|fail|failed)\b", re.I)


def parse_score(text: str, scale: float = 1.0) -> tuple[float, str]:
    """A score in [0, 1] and a reason from a judge's reply.

    Accepts ``{"score": 0.8, "reason": "..."}`` (fenced or bare, score as number or "4/5"),
    ``{"verdict": "pass"}``, or prose such as ``Score: 4/5``; ``scale`` divides a bare number
    (a 1–5 rubric uses ``scale=5``). Anything else raises ``JudgeError``.
    """
    obj = find_json_object(text)
    if obj is not None:
        reason = str(obj.get("reason") or obj.get("explanation") or obj.get("rationale") or "")
        for key in ("score", "rating", "value"):
            if key in obj:
                return _scaled(obj[key], scale), reason
        for key in ("verdict", "label", "passed", "pass"):
            if key in obj:
                return _verdict(obj[key]), reason
    m = _SCORE_TEXT.search(text)
    if m:
        value = float(m.group(1))
        return _check(value / float(m.group(2)) if m.group(2) else value / scale), text.strip()
    m = _VERDICT.match(text)
    if m:
        return _verdict(m.group(1)), text.strip()
    raise JudgeError(f"no score in judge reply: {text[:200]!r}")


def _scaled(value: Any, scale: float) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        if "/" in value:
            num, den = value.split("/", 1)
            try:
                return _check(float(num) / float(den))
            except (ValueError, ZeroDivisionError):
                raise JudgeError(f"unreadable score {value!r}") from None
        try:
            value = float(value)
        except ValueError:
            return _verdict(value)
    if not isinstance(value, (int, float)):
        raise JudgeError(f"unreadable score {value!r}")
    return _check(float(value) / scale)


def _verdict(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    v = str(value).strip().lower()
    if v in ("pass", "passed", "yes", "true", "supported", "relevant", "correct", "1"):
        return 1.0
    if v in ("fail", "failed", "no", "false", "unsupported", "irrelevant", "incorrect", "0"):
        return 0.0
    raise JudgeError(f"unreadable verdict {value!r}")


def _check(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise JudgeError(f"judge score {value} is outside the rubric's range")
    return value


JUDGE_KEYS = ("base_url", "model", "api_key_env", "temperature", "max_tokens", "timeout_s",
              "max_retries", "cache_dir")


def judge_from_args(args: dict[str, Any] | None) -> JudgeClient:
    """A client from an evaluator's ``judge`` argument: ``{"base_url", "model", ...}``."""
    if not isinstance(args, dict):
        raise ValueError("the llm_judge backend needs judge: {base_url, model, api_key_env?}")
    unknown = sorted(set(args) - set(JUDGE_KEYS))
    if unknown:
        raise ValueError(f"unknown judge setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(JUDGE_KEYS)}")
    if not args.get("base_url") or not args.get("model"):
        raise ValueError("judge needs base_url and model")
    return JudgeClient(**args)
