# sentiment stage: see docs/architecture.md
