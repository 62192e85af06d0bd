"""probelab: frozen-feature probes vs fine-tuning, as a Snakemake workflow."""

__version__ = "0.1.0"
