# Helpers shared by every stage: path builders and config lookups. Rules stay thin and call
# these instead of indexing the config themselves.
from pathlib import Path

COHORT = config["cohort"]
RESULTS = f"results/{COHORT}"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"


wildcard_constraints:
    cohort=r"[A-Za-z0-9_.-]+",
    n=r"\d+|all",
    seed=r"\d+",
    encoder=r"[A-Za-z0-9_.-]+",
    model=r"[A-Za-z0-9_]+",


def data_root() -> str:
    return config["data"]["root"]


def subset_sizes() -> list[str]:
    return [str(n) for n in config["subsets"]["sizes"]]


def subset_seeds() -> list[int]:
    return list(config["subsets"]["seeds"])


def check_subset_sizes() -> None:
    """Once the split exists, refuse impossible subset sizes before any job runs.

    On a first run the split is not known yet; the subset job then stops with the same message.
    """
    split_file = Path(f"{RESULTS}/split.parquet")
    if split_file.exists():
        import pandas as pd
        from probelab.subsets import check_sizes

        split = pd.read_parquet(split_file, columns=["split"])
        check_sizes(config["subsets"]["sizes"], int((split["split"] == "train").sum()))


def subset_paths() -> list[str]:
    return expand(
        f"{RESULTS}/subsets/n{{n}}/seed{{seed}}.txt", n=subset_sizes(), seed=subset_seeds()
    )


def official_lists() -> list[str]:
    """The official split lists, as inputs so that editing them reruns the split.

    A generated demo cohort is one directory output, so its lists come with the directory.
    """
    if config["split"]["method"] != "official":
        return []
    if config["demo"]["enabled"]:
        return [data_root()]
    root = Path(data_root())
    return [str(root / config["data"]["train_val_list"]), str(root / config["data"]["test_list"])]
