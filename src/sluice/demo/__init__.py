"""The demo project: a support agent with five cohorts, a baseline and two candidates (scripted)."""
