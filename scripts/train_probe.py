"""Train probe models on one encoder's cached features: the runs of one train_probe job (every
seed of one model and subset size, of one model, or of every model: config key training.job_scope).

Writes one run folder per model x size x seed (docs/architecture.md): model.pt, history.csv,
predictions_val.parquet, then, once every run's model and thresholds are frozen,
predictions_test.parquet and metrics.json. Test labels are read only for that last step
(probelab.probe_job).
"""

# No `from __future__` import: Snakemake prepends its preamble to step scripts.
from pathlib import Path

from probelab.cli import command_line, snakemake_job
from probelab.fingerprint import cache_fingerprints
from probelab.probe_job import RunSpec, train_probe


def main(argv: list[str] | None = None) -> None:
    args, config = command_line(
        __doc__,
        argv,
        paths={
            "--image-cache": {"help": "results/{cohort}/embeddings/{encoder}/{fingerprint}.h5"},
            "--index": {"help": "results/{cohort}/index.parquet"},
            "--split": {"help": "results/{cohort}/split.parquet"},
            "--subsets": {"nargs": "+", "help": "one subset file per seed"},
            "--out-dirs": {"nargs": "+", "help": "one run folder per seed"},
        },
        options={
            "--encoder": {"required": True, "help": "encoder name in the config's encoders"},
            "--model": {"required": True, "help": "model name in the config's models"},
            "--n": {"required": True, "help": "subset size or 'all'"},
            "--seeds": {"type": int, "nargs": "+", "required": True, "help": "one per run"},
            "--prompt-cache": {
                "type": Path,
                "help": "results/{cohort}/prompts/{encoder}/{fingerprint}.h5, for prompt models",
            },
            "--threads": {"type": int, "help": "CPU threads (default: config training.threads)"},
        },
    )
    if args.model not in config["models"]:
        raise SystemExit(f"model '{args.model}' is not configured under 'models' in {args.config}.")
    if not len(args.seeds) == len(args.subsets) == len(args.out_dirs):
        raise SystemExit("give one subset file and one output folder per seed.")
    train_probe(
        image_cache=args.image_cache,
        prompt_cache=args.prompt_cache,
        index=args.index,
        split=args.split,
        runs=[
            RunSpec(args.model, args.n, seed, subset, out)
            for seed, subset, out in zip(args.seeds, args.subsets, args.out_dirs, strict=True)
        ],
        cohort=config["cohort"],
        encoder=args.encoder,
        models=config["models"],
        pathologies=config["pathologies"],
        training=config["training"],
        threads=args.threads or config["training"]["threads"],
        fingerprints=cache_fingerprints(config, args.encoder),
    )


if "snakemake" in globals():
    snakemake_job(snakemake)
    train_probe(
        image_cache=Path(snakemake.input.images),
        prompt_cache=Path(snakemake.input.prompts[0]) if snakemake.input.prompts else None,
        index=Path(snakemake.input.index),
        split=Path(snakemake.input.split),
        runs=[
            RunSpec(r["model"], str(r["n"]), int(r["seed"]), Path(r["subset"]), Path(r["out_dir"]))
            for r in snakemake.params.runs
        ],
        cohort=snakemake.params.cohort,
        encoder=snakemake.wildcards.encoder,
        models=snakemake.params.models,
        pathologies=snakemake.params.pathologies,
        training=snakemake.params.training,
        threads=snakemake.threads,
        fingerprints=snakemake.params.fingerprints,
    )
elif __name__ == "__main__":
    main()
