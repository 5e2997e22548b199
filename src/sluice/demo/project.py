"""Writes the example project used by ``sluice init`` and ``sluice demo``.

Three releases of one support agent share prompts and tool schemas and differ where real releases
differ: the model, sampling params, context budget, and (because the model is scripted) the
answers. ``init`` writes the baseline and the careful candidate; ``demo`` adds the fast one.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sluice.demo.corpus import build_rows, responses

SYSTEM_PROMPT = """You are the support assistant of Example Cloud. Answer only from the knowledge-base
documents you are given; if they do not contain the answer, say so. Never disclose another
customer's personal or account data. Use a tool when the customer asks for an action on an order,
a subscription or a ticket.
"""

ANSWER_TEMPLATE = """Customer question: {{ question }}

Knowledge base:
{% for doc in context %}[{{ doc.id }}] {{ doc.text }}
{% endfor %}
Answer in the customer's language, using only the knowledge base above.
"""

# What the scripted model says to a question that is not a dataset row (the README tour's request)
DEFAULT_ANSWER = ("Refunds go back to the original payment method within 5-10 business days of approval. "
                  "Tell me your order number and I can check the status of yours.")

TOOLS = {
    "lookup_order": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^[0-9]{5}$"}},
                     "required": ["order_id"], "additionalProperties": False},
    "cancel_subscription": {"type": "object", "properties": {"account_id": {"type": "string"}},
                            "required": ["account_id"], "additionalProperties": False},
    "create_ticket": {"type": "object",
                      "properties": {"account_id": {"type": "string"},
                                     "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                                     "summary": {"type": "string"}},
                      "required": ["account_id", "priority"], "additionalProperties": False},
}

# version -> (variant of scripted answers, model, sampling params, context budget, description)
RELEASES = {
    "1.0.0": ("baseline", "support-large-2026-06", {"temperature": 0.2, "top_p": 1.0, "max_tokens": 400, "seed": 7},
              1500, "Production: the large model."),
    "1.1.0": ("fast", "support-small-2026-10", {"temperature": 0.7, "top_p": 0.95, "max_tokens": 300, "seed": 7},
              800, "Candidate: the small model, about twice as fast at a sixth of the price per token."),
    "1.2.0": ("careful", "support-large-2026-06", {"temperature": 0.1, "top_p": 1.0, "max_tokens": 400, "seed": 7},
              1500, "Candidate: the large model at a lower temperature."),
}
COSTS = {"support-large-2026-06": {"input": 2.5, "output": 10.0}, "support-small-2026-10": {"input": 0.4, "output": 1.6}}

SLUICE_YAML = """# Sluice configuration. Secrets never go here: providers name the environment variable holding a key.
store: duckdb:///.sluice/sluice.duckdb
reports_dir: reports
runner:
  concurrency: 16
  retries: 3
  timeout_s: 30
server:
  host: 127.0.0.1
  port: 4000
"""

GATE_YAML = """# Gate policy: what the candidate must show against the baseline, cohort by cohort.
version: 1
confidence: 0.95          # confidence level of every interval the verdict relies on
thresholds:
  # pass-rate drop allowed vs baseline. auto: overall, the candidate must show that any drop is
  # smaller than what the rows can resolve (about 0.17 for 240 rows at 85%, 0.05 for 2,400); in
  # each cohort, any drop that stays significant after correcting for every check fails.
  # Write a number (e.g. 0.05) once the dataset is large enough to show it.
  max_regression: auto
evaluators:
  - name: groundedness    # every claim of the answer must be supported by the retrieved context
    critical: true
    thresholds: {min_pass_rate: 0.75}
  - name: task_completion
  - name: tool_selection_accuracy
  - name: refusal         # rows labelled must_refuse must be refused, others must not be
    critical: true
  - name: pii_leak
    critical: true
  - name: latency_budget
    args: {max_ms: 1000}
cohorts:
  min_rows: 20            # fewer rows than this in a cohort: inconclusive, not pass
  require: [enterprise, billing]
error_budget: 0.02        # share of rows the target may fail before the gate exits 5
latency:
  p95_max_ratio: 1.5      # candidate p95 may be at most 1.5x the baseline's
cost:
  max_ratio: 2.0
"""

ROLLOUT_YAML = """# Rollout plan: how support-agent@1.2.0 replaces the stable release of the 'support' deployment.
# Start it with 'sluice rollout start rollout.yaml' (it needs a passing gate of 1.2.0 against the stable
# release on the 'support' dataset); the controller in 'sluice serve' decides each step.
deployment: support
candidate: support-agent@1.2.0
dataset: support
alpha: 0.05                   # false-alarm rate of all metrics and cohorts together
cohorts: [enterprise, billing]  # judged on their own as well as all traffic together
allow_narrow: true            # a failing cohort is dropped from the canary instead of rolling back
min_requests: 200             # per arm, before a step may advance
online_eval:
  sample_rate: 0.2            # share of traces (both arms alike) scored by the gate's evaluators
analysis:
  metrics:
    - {metric: error_rate, margin: 0.02, relative: false, critical: true}   # +2 points at most; a harm rolls back
    - {metric: fallback_rate, margin: 0.05, relative: false}
    - {metric: guardrail_block_rate, margin: 0.02, relative: false}
    - {metric: latency_p99, margin: 0.02, relative: false}   # share slower than stable's p99: +2 points at most
    - {metric: feedback_rate:thumbs_down, margin: 0.03, relative: false}
steps:
  - mirror: {percent: 100}    # shadow copies of live requests first: no user sees the candidate
    min_duration: 30s
  - weight: {bp: 1000}        # 10% of users (sticky per user)
    min_duration: 1m
    max_duration: 30m         # still inconclusive after this: hold for a person
  - weight: {bp: 5000}        # the last step passing promotes: 1.2.0 becomes stable
    min_duration: 1m
"""


def release_yaml(version: str) -> str:
    variant, model, params, budget, description = RELEASES[version]
    doc = {
        "name": "support-agent",
        "version": version,
        "description": description,
        "target": {"type": "chat"},
        "components": {
            "responder": {
                "provider": "scripted",  # a fake, local model for the demo; use provider: openai for real ones
                "model": model,
                "script": "script.jsonl",
                "params": params,
                "system_prompt_file": "prompts/system.txt",
                "prompt": "prompts/answer.jinja",
                "context_budget": budget,
            }
        },
        "retriever": {"index": "kb-2026-11", "top_k": 2},
        "tools": [{"name": n, "description": n.replace("_", " "), "parameters_file": f"tools/{n}.json"} for n in TOOLS],
        "guardrails": [{"name": "no-pii", "type": "pii", "action": "block"}],
        "cost": COSTS[model],
        "metadata": {"owner": "support-platform", "variant": variant},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def write_project(root: Path, versions: tuple[str, ...] = ("1.0.0", "1.2.0")) -> dict[str, Path]:
    """Write the example project under ``root``; returns the paths a caller needs."""
    root.mkdir(parents=True, exist_ok=True)
    rows = build_rows()
    (root / "sluice.yaml").write_text(SLUICE_YAML)
    (root / "gate.yaml").write_text(GATE_YAML)
    (root / "rollout.yaml").write_text(ROLLOUT_YAML)
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "support.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    paths = {"config": root / "sluice.yaml", "policy": root / "gate.yaml", "dataset": data / "support.jsonl",
             "rollout": root / "rollout.yaml"}
    for version in versions:
        folder = root / "releases" / f"v{version}"
        (folder / "prompts").mkdir(parents=True, exist_ok=True)
        (folder / "tools").mkdir(exist_ok=True)
        (folder / "release.yaml").write_text(release_yaml(version))
        (folder / "prompts" / "system.txt").write_text(SYSTEM_PROMPT)
        (folder / "prompts" / "answer.jinja").write_text(ANSWER_TEMPLATE)
        for name, schema in TOOLS.items():
            (folder / "tools" / f"{name}.json").write_text(json.dumps(schema, indent=2) + "\n")
        script = responses(RELEASES[version][0], rows)
        (folder / "script.jsonl").write_text(
            "".join(json.dumps({"row_id": rid} | reply, ensure_ascii=False) + "\n" for rid, reply in script.items())
            + json.dumps({"default": True, "content": DEFAULT_ANSWER}) + "\n"  # live traffic (sluice serve)
        )
        paths[version] = folder
    return paths
