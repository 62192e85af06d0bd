# probe stage: see docs/architecture.md
