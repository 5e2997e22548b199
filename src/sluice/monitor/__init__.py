"""After promotion: monitors and alerts on a deployment's live metrics, and drift of its live
inputs away from the dataset its release was gated on."""
