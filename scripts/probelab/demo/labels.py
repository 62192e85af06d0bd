"""The demo cohort's label model: patients, follow-ups and findings in NIH's label-table format.

The numbers below describe the synthetic world, not user choices: NIH's finding frequencies, the
familiar clusters of co-occurring findings, patients with several follow-ups, PA and AP views, and
"No Finding" as the majority. The official train_val / test lists are patient-disjoint, like NIH's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABEL_SEPARATOR = "|"

# Relative frequency of each finding among abnormal images: NIH's own label counts.
NIH_FINDING_WEIGHTS = {
    "Infiltration": 19894,
    "Effusion": 13317,
    "Atelectasis": 11559,
    "Nodule": 6331,
    "Mass": 5782,
    "Pneumothorax": 5302,
    "Consolidation": 4667,
    "Pleural_Thickening": 3385,
    "Cardiomegaly": 2776,
    "Emphysema": 2516,
    "Edema": 2303,
    "Fibrosis": 1686,
    "Pneumonia": 1431,
    "Hernia": 227,
}
# P(also finding B | primary finding A): the clinically familiar clusters (heart failure:
# cardiomegaly + effusion + edema; pneumonia with infiltrates; emphysema with pneumothorax, ...).
CO_OCCURRENCE = {
    "Effusion": {"Cardiomegaly": 0.12, "Edema": 0.08, "Atelectasis": 0.2, "Infiltration": 0.15},
    "Cardiomegaly": {"Effusion": 0.35, "Edema": 0.1},
    "Edema": {"Effusion": 0.35, "Infiltration": 0.3, "Cardiomegaly": 0.15},
    "Pneumonia": {"Infiltration": 0.4, "Consolidation": 0.15, "Effusion": 0.1},
    "Consolidation": {"Effusion": 0.2, "Atelectasis": 0.2, "Infiltration": 0.2},
    "Atelectasis": {"Effusion": 0.25, "Infiltration": 0.2},
    "Mass": {"Nodule": 0.2, "Effusion": 0.1},
    "Nodule": {"Mass": 0.1, "Infiltration": 0.1},
    "Emphysema": {"Pneumothorax": 0.15},
    "Pneumothorax": {"Emphysema": 0.1, "Effusion": 0.1},
    "Fibrosis": {"Pleural_Thickening": 0.2, "Infiltration": 0.15},
    "Pleural_Thickening": {"Effusion": 0.15, "Fibrosis": 0.1},
    "Infiltration": {"Effusion": 0.15, "Atelectasis": 0.12, "Nodule": 0.05},
}
EXTRA_FINDING_PROBABILITY = 0.1  # an unrelated second finding
ABNORMAL_PROPENSITY = (1.3, 1.8)  # Beta(a, b) per patient: mean 0.42, so ~58 % "No Finding"
CHRONIC_PROBABILITY = 0.5  # an abnormal follow-up shows the patient's chronic finding
FOLLOW_UP_P = 0.4  # images per patient ~ Geometric(p): mean 2.5, like NIH's long tail ...
MAX_IMAGES_PER_PATIENT = 12  # ... cut so that one patient cannot dominate a small demo
AP_PROBABILITY = {False: 0.25, True: 0.5}  # by abnormal: bedside (AP) films are of sicker patients
MALE_PROBABILITY = 0.56
AGE_MEAN, AGE_SD = 47.0, 16.0
BIRTHDAY_BETWEEN_FOLLOW_UPS = 0.3  # follow-ups span months to a few years
TEST_SHARE = 0.228  # NIH: 25,596 of 112,120 images in test_list.txt
# Guaranteed positives per pathology among written images (at most), so rare findings such as
# Hernia exist in small demos; never more than an equal share of the abnormal images.
MIN_POSITIVES = 3
# NIH pixel spacings (mm) and their frequencies, for detectors ~2,500 px wide: the written image
# covers the same field, so its spacing is scaled by 2500 / image_size.
NIH_SPACINGS_MM = (0.143, 0.168, 0.139, 0.171, 0.194311)
NIH_SPACING_WEIGHTS = (0.36, 0.32, 0.18, 0.09, 0.05)
DETECTOR_PIXELS = 2500


def _finding_weights(pathologies: list[str]) -> np.ndarray:
    """NIH frequencies for NIH findings; pathologies unknown to NIH get their median frequency."""
    median = float(np.median(list(NIH_FINDING_WEIGHTS.values())))
    weights = np.array([NIH_FINDING_WEIGHTS.get(p, median) for p in pathologies], dtype=float)
    return weights / weights.sum()


def _draw_findings(
    rng: np.random.Generator, pathologies: list[str], weights: np.ndarray, chronic: int
) -> set[str]:
    primary = (
        chronic
        if rng.random() < CHRONIC_PROBABILITY
        else int(rng.choice(len(pathologies), p=weights))
    )
    findings = {pathologies[primary]}
    for other, probability in CO_OCCURRENCE.get(pathologies[primary], {}).items():
        if other in pathologies and rng.random() < probability:
            findings.add(other)
    if rng.random() < EXTRA_FINDING_PROBABILITY:
        findings.add(pathologies[int(rng.choice(len(pathologies), p=weights))])
    return findings


def _draw_patients(rng: np.random.Generator, n_rows: int) -> list[int]:
    """Images per patient, summing to n_rows."""
    counts: list[int] = []
    remaining = n_rows
    while remaining > 0:
        count = min(int(rng.geometric(FOLLOW_UP_P)), MAX_IMAGES_PER_PATIENT, remaining)
        counts.append(count)
        remaining -= count
    return counts


def draw_label_table(
    rng: np.random.Generator, pathologies: list[str], n_rows: int, image_size: int
) -> tuple[pd.DataFrame, list[set[str]]]:
    """NIH-format label table of n_rows images (sorted by image id) and each row's finding set.

    The table has every NIH column but "Finding Labels", which the caller inserts (label_strings)
    once the findings are final.
    """
    weights = _finding_weights(pathologies)
    rows: list[dict] = []
    findings: list[set[str]] = []
    for patient, count in enumerate(_draw_patients(rng, n_rows), start=1):
        propensity = rng.beta(*ABNORMAL_PROPENSITY)
        chronic = int(rng.choice(len(pathologies), p=weights))
        sex = "M" if rng.random() < MALE_PROBABILITY else "F"
        age = int(np.clip(round(rng.normal(AGE_MEAN, AGE_SD)), 1, 95))
        for follow_up in range(count):
            abnormal = bool(rng.random() < propensity)
            image_findings = (
                _draw_findings(rng, pathologies, weights, chronic) if abnormal else set()
            )
            spacing = (
                rng.choice(NIH_SPACINGS_MM, p=NIH_SPACING_WEIGHTS) * DETECTOR_PIXELS / image_size
            )
            rows.append(
                {
                    "Image Index": f"{patient:08d}_{follow_up:03d}.png",
                    "Follow-up #": follow_up,
                    "Patient ID": patient,
                    "Patient Age": min(age, 95),
                    "Patient Gender": sex,
                    "View Position": "AP" if rng.random() < AP_PROBABILITY[abnormal] else "PA",
                    # NIH's header really spells these as "OriginalImage[Width,Height]" without
                    # quoting, so a CSV reader sees four columns; these four names reproduce the
                    # header byte for byte.
                    "OriginalImage[Width": image_size,
                    "Height]": image_size,
                    "OriginalImagePixelSpacing[x": round(float(spacing), 6),
                    "y]": round(float(spacing), 6),
                }
            )
            findings.append(image_findings)
            age += int(rng.random() < BIRTHDAY_BETWEEN_FOLLOW_UPS)
    return pd.DataFrame(rows), findings


def guarantee_positives(
    rng: np.random.Generator, findings: list[set[str]], written: np.ndarray, pathologies: list[str]
) -> None:
    """Add rare findings to abnormal written images until each has its minimum count (in place)."""
    abnormal = [i for i in written if findings[i]]
    wanted = min(MIN_POSITIVES, max(1, len(abnormal) // len(pathologies)))
    for pathology in pathologies:
        have = sum(pathology in findings[i] for i in written)
        candidates = [i for i in abnormal if pathology not in findings[i]]
        for i in rng.permutation(candidates)[: max(0, wanted - have)]:
            findings[i].add(pathology)


def label_strings(findings: list[set[str]], no_finding_label: str) -> list[str]:
    """Each row's "Finding Labels" value: its findings joined by '|', or the no-finding label."""
    # NIH lists co-occurring findings in alphabetical order.
    return [LABEL_SEPARATOR.join(sorted(f)) if f else no_finding_label for f in findings]


def official_lists(table: pd.DataFrame, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Patient-disjoint (train_val, test) image lists over every listed image, like NIH's."""
    sizes = table.groupby("Patient ID").size()
    patients = rng.permutation(sizes.index.to_numpy())
    cumulative = np.cumsum(sizes.loc[patients].to_numpy())
    # At least one patient on each side whenever there are two.
    n_test_patients = min(
        int(np.searchsorted(cumulative, TEST_SHARE * len(table))) + 1, max(1, len(patients) - 1)
    )
    is_test = table["Patient ID"].isin(patients[:n_test_patients])
    return sorted(table.loc[~is_test, "Image Index"]), sorted(table.loc[is_test, "Image Index"])
