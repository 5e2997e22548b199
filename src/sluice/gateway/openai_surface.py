"""The rest of the OpenAI surface: ``GET /v1/models/{id}``, and an OpenAI-shaped 404 for the
routes Sluice does not serve (``/v1/embeddings``, ``/v1/responses``, ``/v1/completions``, …).

Without it those answered FastAPI's ``{"detail": "Not Found"}``, which the official clients show
as an empty error. The ``error`` object (message, type, param, code) is what they unwrap.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.gateway.execute import GatewayFailure

SUPPORTED = "POST /v1/chat/completions, GET /v1/models and GET /v1/models/{model}"
MODELS_PREFIX = "/v1/models/"


def model_body(deployments: dict[str, Any], model_id: str) -> bytes | None:
    """The ``model`` object of a deployment, or None when there is no such deployment."""
    if model_id not in deployments:
        return None
    return orjson.dumps({"id": model_id, "object": "model", "created": 0, "owned_by": "sluice"})


def unknown_model(deployments: dict[str, Any], model_id: str) -> GatewayFailure:
    known = ", ".join(sorted(deployments)[:10]) or "none configured"
    return GatewayFailure(404, f"The model '{model_id}' does not exist: models are Sluice deployments ({known})",
                          "invalid_request_error", "model_not_found")


def unsupported(method: str, path: str) -> GatewayFailure:
    return GatewayFailure(404, f"{method} {path} is not supported by the Sluice gateway; it serves {SUPPORTED}",
                          "invalid_request_error", "unsupported_route")
