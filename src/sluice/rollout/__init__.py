"""Rollouts: plans, online analysis (anytime-valid sequential tests), the controller and its decisions."""
