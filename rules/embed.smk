# embed stage: see docs/architecture.md
