"""Where every output of the workflow lives: the one place that builds result paths.

The rules ask it for their inputs and outputs, the step scripts' shell entry points for their
default paths, and the tests for the files to look at. A method called with a wildcard such as
"{encoder}" returns the rule's path template. File formats: docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = "results"

# What one probe run writes into its folder.
RUN_FILES = (
    "metrics.json",
    "predictions_val.parquet",
    "predictions_test.parquet",
    "history.csv",
    "model.pt",
)

# The report's tables, by the key that rules and scripts use, and their file names.
REPORT_TABLES = {
    "metrics": "metrics.csv",
    "by_setting": "summary_by_setting.csv",
    "history": "history.csv",
    "pathologies": "pathologies.csv",
    "ci": "bootstrap_ci.csv",
    "comparisons": "comparisons.csv",
    "sentiment": "sentiment.csv",
    "sentiment_runs": "sentiment_runs.csv",
    "sentiment_comparisons": "sentiment_comparisons.csv",
    "transfer": "transfer.csv",
}


@dataclass(frozen=True)
class Figure:
    """A report figure: the aggregated tables it is drawn from (never run folders) and its
    title in the Snakemake report."""

    tables: tuple[str, ...]
    title: str


FIGURES = {
    "learning_curves": Figure(("by_setting", "ci"), "learning curves"),
    "auroc_heatmap": Figure(("by_setting",), "AUROC heatmap"),
    "precision_recall": Figure(("by_setting", "ci"), "precision vs recall"),
    "training_curves": Figure(("history",), "training curves"),
    "sentiment_comparison": Figure(("sentiment",), "sentiment: learning curves by method"),
    "transfer": Figure(("transfer",), "external test sets: internal vs external"),
}
SENTIMENT_FIGURE = "sentiment_comparison"
TRANSFER_FIGURE = "transfer"
SUMMARY = "summary.md"


@dataclass(frozen=True)
class CohortLayout:
    """The CXR track's outputs for one cohort, under results/{cohort}/."""

    cohort: str
    # an external test cohort of this cohort (config key external): the same layout under
    # results/{cohort}/external/{name}/ (its index, image caches, split and evaluated runs)
    external_name: str | None = None

    @classmethod
    def of(cls, config: dict[str, Any]) -> CohortLayout:
        return cls(config["cohort"])

    def external(self, name: str) -> CohortLayout:
        return CohortLayout(self.cohort, name)

    @property
    def root(self) -> str:
        if self.external_name is not None:
            return f"{RESULTS}/{self.cohort}/external/{self.external_name}"
        return f"{RESULTS}/{self.cohort}"

    @property
    def external_data(self) -> str:
        """Where rule demo_external_cohort writes a generated external cohort."""
        return f"{self.root}/data"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.root}/benchmarks"

    @property
    def data_manifest(self) -> str:
        """What the index was built from (probelab.cohort.data_manifest); rewritten while the
        DAG is built, only when the data changed."""
        return f"{self.root}/data_manifest.json"

    @property
    def index(self) -> str:
        return f"{self.root}/index.parquet"

    @property
    def index_counts(self) -> str:
        return f"{self.root}/index_counts.json"

    @property
    def split(self) -> str:
        return f"{self.root}/split.parquet"

    def subset(self, n: str | int, seed: str | int) -> str:
        return f"{self.root}/subsets/n{n}/seed{seed}.txt"

    def built_encoder(self, encoder: str) -> str:
        """The model folder that rule make_demo_encoder writes for a build_from encoder."""
        return f"{self.root}/encoders/{encoder}"

    def image_cache(self, encoder: str, fingerprint: str) -> str:
        """An encoder's image cache, named by the digest of what decides its features
        (probelab.fingerprint): a changed setting writes a new cache beside the old one."""
        return f"{self.root}/embeddings/{encoder}/{fingerprint}.h5"

    def prompt_cache(self, encoder: str, fingerprint: str) -> str:
        return f"{self.root}/prompts/{encoder}/{fingerprint}.h5"

    def run_dir(self, encoder: str, model: str, n: str | int, seed: str | int) -> str:
        return f"{self.root}/runs/{encoder}/{model}/n{n}/seed{seed}"

    def run_file(self, encoder: str, model: str, n: str | int, seed: str | int, name: str) -> str:
        return f"{self.run_dir(encoder, model, n, seed)}/{name}"

    @property
    def report(self) -> str:
        return f"{self.root}/report"

    def report_table(self, key: str) -> str:
        return f"{self.report}/{REPORT_TABLES[key]}"

    def figure_files(self, name: str, formats: list[str]) -> list[str]:
        """The files of one figure, one per format."""
        return [f"{self.report}/{name}.{kind}" for kind in formats]

    @property
    def summary(self) -> str:
        return f"{self.report}/{SUMMARY}"


@dataclass(frozen=True)
class SentimentLayout:
    """The sentiment track's outputs for one data set, under results/sentiment/{dataset}/."""

    dataset: str

    @classmethod
    def of(cls, sentiment: dict[str, Any]) -> SentimentLayout:
        return cls(sentiment["dataset"])

    @property
    def root(self) -> str:
        return f"{RESULTS}/sentiment/{self.dataset}"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.root}/benchmarks"

    @property
    def demo_folder(self) -> str:
        """Where rule sentiment_demo_data writes the generated reviews."""
        return f"{self.root}/data"

    @property
    def explore_json(self) -> str:
        return f"{self.root}/explore/explore.json"

    @property
    def explore_figure(self) -> str:
        return f"{self.root}/explore/lengths.png"

    def inspect(self, model: str) -> str:
        return f"{self.root}/inspect/{model}.json"

    def features(self, model: str, pooling: str) -> str:
        """The frozen features of every split from one encoder and pooling (encoded once; every
        cell of the matrix reads its rows by index)."""
        return f"{self.root}/features/{model}/{pooling}.h5"

    def method_folder(self, method: str, model: str, pooling: str | None = None) -> str:
        """The folder of one method on one encoder: per pooling for the frozen-feature methods
        ("svm", "logreg"), one for "finetune" (pooling None); its cells are below it."""
        folder = f"{self.root}/{method}/{model}"
        return folder if pooling is None else f"{folder}/{pooling}"

    def cell_file(
        self, method: str, model: str, pooling: str | None, n: str, seed: str | int, name: str
    ) -> str:
        """A file of one cell (training size n, seed) of one method on one encoder."""
        return cell_path(self.method_folder(method, model, pooling), n, seed, name)

    def metrics(self, method: str, model: str, pooling: str | None, n: str, seed: str | int) -> str:
        return self.cell_file(method, model, pooling, n, seed, "metrics.json")


# What each sentiment method writes into a cell's folder (besides an optional fine-tuned model/).
SENTIMENT_CELL_FILES = {
    "svm": ("metrics.json", "predictions.csv", "cv_results.csv", "model.joblib"),
    "logreg": ("metrics.json", "predictions.csv", "model.joblib"),
    "finetune": ("metrics.json", "predictions.csv", "log_history.json"),
}


def cell_path(folder: str | Path, n: str | int, seed: str | int, name: str = "") -> str:
    """A cell's folder (n{n}/seed{seed}) under a sentiment method's folder, or a file in it."""
    path = f"{folder}/n{n}/seed{seed}"
    return f"{path}/{name}" if name else path


def image_cache_of(config: dict[str, Any], encoder: str) -> str:
    """The image cache the config's settings of `encoder` call for."""
    from probelab.fingerprint import digest, encoder_fingerprint

    settings = config["encoders"][encoder]
    return CohortLayout.of(config).image_cache(
        encoder, digest(encoder_fingerprint(encoder, settings))
    )


def prompt_cache_of(config: dict[str, Any], encoder: str) -> str:
    """The prompt cache the config's settings of `encoder`, pathologies and prompts call for."""
    from probelab.fingerprint import digest, prompt_fingerprint

    fingerprint = prompt_fingerprint(
        encoder, config["encoders"][encoder], config["pathologies"], config["prompts"]
    )
    return CohortLayout.of(config).prompt_cache(encoder, digest(fingerprint))


def image_caches(config: dict[str, Any]) -> dict[str, str]:
    """Every configured encoder's image cache, in config order."""
    return {encoder: image_cache_of(config, encoder) for encoder in config["encoders"]}
