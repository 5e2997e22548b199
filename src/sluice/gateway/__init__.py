"""The OpenAI-compatible gateway: deployments, sticky canary, shadow mirroring, fallbacks, guardrails.

Build it with ``sluice.gateway.app.make_gateway(settings, store)`` and include ``gateway.router`` in
the server app; see docs/gateway.md.
"""
