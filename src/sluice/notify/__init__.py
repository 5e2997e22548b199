"""Outgoing notifications (webhooks) shared by the rollout controller and alerts."""
