"""A second synthetic cohort in CheXpert's format, for the demo's external test set.

The images and findings come from the NIH-layout demo generator (probelab.demo.cohort) with
another seed; the table is then written as CheXpert's train.csv is: a Path column
("CheXpert-v1.0-small/train/patient00042/study1/view1_frontal.jpg", JPEG files; the table is
CheXpert-v1.0-small/train.csv), Sex, Age,
Frontal/Lateral, AP/PA, and one column per CheXpert label holding 1.0, 0.0, -1.0 (uncertain) or
blank (not mentioned). Like CheXpert, it names some findings differently (Pleural Effusion), lumps
others (Lung Lesion = Mass or Nodule, Lung Opacity = Infiltration) and lacks the rest (Emphysema,
Fibrosis, Pleural_Thickening, Hernia), so a workflow evaluating on it has to map labels and show
pathologies that are missing; a share of positives is written as uncertain and most negatives as
blank, and a lateral view is added for some studies (a row filter keeps the frontal ones).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from probelab.demo.cohort import write_demo_cohort

# CheXpert label -> the demo (NIH) findings it is positive for
CHEXPERT_SOURCES = {
    "Enlarged Cardiomediastinum": (),
    "Cardiomegaly": ("Cardiomegaly",),
    "Lung Opacity": ("Infiltration",),
    "Lung Lesion": ("Mass", "Nodule"),
    "Edema": ("Edema",),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Atelectasis": ("Atelectasis",),
    "Pneumothorax": ("Pneumothorax",),
    "Pleural Effusion": ("Effusion",),
    "Pleural Other": ("Pleural_Thickening",),
    "Fracture": (),
    "Support Devices": (),
}
CHEXPERT_LABELS = ("No Finding", *CHEXPERT_SOURCES)
# as in the download: the table inside the dataset folder, paths relative to its parent
PREFIX = "CheXpert-v1.0-small/train"
TABLE = "CheXpert-v1.0-small/train.csv"


def write_chexpert_style_cohort(
    root: Path,
    pathologies: list[str],
    *,
    n_images: int,
    image_size: int,
    seed: int,
    uncertain_fraction: float = 0.15,
    blank_fraction: float = 0.6,
    lateral_fraction: float = 0.1,
) -> dict[str, int]:
    """Write the cohort into `root` (CheXpert-v1.0-small/train.csv and the JPEG files its Path
    column names, relative to `root`)."""
    root = Path(root)
    rng = np.random.default_rng([seed, 1])
    with tempfile.TemporaryDirectory() as scratch:
        nih = Path(scratch) / "nih"
        write_demo_cohort(
            nih,
            pathologies,
            n_images=n_images,
            listed_not_downloaded=0.0,
            image_size=image_size,
            images_per_folder=n_images,
            rgba_fraction=0.0,
            sixteen_bit_fraction=0.0,
            seed=seed,
        )
        table = pd.read_csv(nih / "Data_Entry_2017_v2020.csv", dtype=str, keep_default_na=False)
        files = {p.name: p for p in nih.rglob("*.png")}
        rows = []
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for _, row in table.iterrows():
            findings = set(row["Finding Labels"].split("|")) - {"No Finding"}
            patient = f"patient{int(row['Patient ID']):05d}"
            study = f"study{int(row['Follow-up #']) + 1}"
            image = Image.open(files[row["Image Index"]]).convert("L")
            views = [("view1_frontal.jpg", "Frontal", row["View Position"])]
            if rng.random() < lateral_fraction:
                views.append(("view2_lateral.jpg", "Lateral", ""))
            for file_name, frontal, ap_pa in views:
                path = f"{PREFIX}/{patient}/{study}/{file_name}"
                (partial / path).parent.mkdir(parents=True, exist_ok=True)
                image.save(partial / path, quality=90)
                entry = {
                    "Path": path,
                    "Sex": {"M": "Male", "F": "Female"}.get(row["Patient Gender"], "Unknown"),
                    "Age": row["Patient Age"],
                    "Frontal/Lateral": frontal,
                    "AP/PA": ap_pa,
                    "No Finding": "" if findings else "1.0",
                }
                for label, sources in CHEXPERT_SOURCES.items():
                    entry[label] = _cell(
                        rng, bool(findings & set(sources)), uncertain_fraction, blank_fraction
                    )
                rows.append(entry)
        frame = pd.DataFrame(
            rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
        )
        frame.to_csv(partial / TABLE, index=False)
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
    return {"rows": len(frame), "frontal": int((frame["Frontal/Lateral"] == "Frontal").sum())}


def _cell(rng: np.random.Generator, positive: bool, uncertain: float, blank: float) -> str:
    if positive:
        return "-1.0" if rng.random() < uncertain else "1.0"
    return "" if rng.random() < blank else "0.0"
