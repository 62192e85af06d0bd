"""The experiment report: aggregation of run folders, patient-level bootstrap, figures, summary."""
