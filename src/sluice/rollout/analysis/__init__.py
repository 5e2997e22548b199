"""The rollout's analysis: pure functions over measurements, anytime-valid at every look.

    state = initial_state(rules, alpha, cohorts=plan_cohorts)   # JSON-serialisable
    state = update(state, batches)                               # after every look
    findings = judge(rules, state)                               # one Finding per metric × cohort

Rates with a relative margin use the two-counter e-process (``eprocess``), means and absolute-margin
rates the normal-mixture martingale (``mixture``); harm tests share α across metrics × cohorts
(``alpha``), non-inferiority tests are each at ``pass_alpha`` (all must pass to advance). docs/rollouts.md
("Analysis") explains the choices and the simulation that checks them.
"""

from sluice.rollout.analysis.judge import judge
from sluice.rollout.analysis.state import drop_cohorts, initial_state, rules_of, update

__all__ = ["drop_cohorts", "initial_state", "judge", "rules_of", "update"]
