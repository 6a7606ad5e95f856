"""MMLU's 57 subjects: the category each belongs to and its rows in the test split.

The four categories (stem, humanities, social_sciences, other) are the standard MMLU grouping, as
lm-evaluation-harness 0.4.x assigns them (its mmlu_<subject>.yaml tags `mmlu_<category>_tasks`).
Row counts are those of cais/mmlu `all` test (14,042 rows), used to check a subject's rows when a
subset file of local data is read."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = ("stem", "humanities", "social_sciences", "other")

# subject -> (category, rows in the test split)
SUBJECTS: dict[str, tuple[str, int]] = {
    "abstract_algebra": ("stem", 100),
    "anatomy": ("stem", 135),
    "astronomy": ("stem", 152),
    "college_biology": ("stem", 144),
    "college_chemistry": ("stem", 100),
    "college_computer_science": ("stem", 100),
    "college_mathematics": ("stem", 100),
    "college_physics": ("stem", 102),
    "computer_security": ("stem", 100),
    "conceptual_physics": ("stem", 235),
    "electrical_engineering": ("stem", 145),
    "elementary_mathematics": ("stem", 378),
    "high_school_biology": ("stem", 310),
    "high_school_chemistry": ("stem", 203),
    "high_school_computer_science": ("stem", 100),
    "high_school_mathematics": ("stem", 270),
    "high_school_physics": ("stem", 151),
    "high_school_statistics": ("stem", 216),
    "machine_learning": ("stem", 112),
    "formal_logic": ("humanities", 126),
    "high_school_european_history": ("humanities", 165),
    "high_school_us_history": ("humanities", 204),
    "high_school_world_history": ("humanities", 237),
    "international_law": ("humanities", 121),
    "jurisprudence": ("humanities", 108),
    "logical_fallacies": ("humanities", 163),
    "moral_disputes": ("humanities", 346),
    "moral_scenarios": ("humanities", 895),
    "philosophy": ("humanities", 311),
    "prehistory": ("humanities", 324),
    "professional_law": ("humanities", 1534),
    "world_religions": ("humanities", 171),
    "econometrics": ("social_sciences", 114),
    "high_school_geography": ("social_sciences", 198),
    "high_school_government_and_politics": ("social_sciences", 193),
    "high_school_macroeconomics": ("social_sciences", 390),
    "high_school_microeconomics": ("social_sciences", 238),
    "high_school_psychology": ("social_sciences", 545),
    "human_sexuality": ("social_sciences", 131),
    "professional_psychology": ("social_sciences", 612),
    "public_relations": ("social_sciences", 110),
    "security_studies": ("social_sciences", 245),
    "sociology": ("social_sciences", 201),
    "us_foreign_policy": ("social_sciences", 100),
    "business_ethics": ("other", 100),
    "clinical_knowledge": ("other", 265),
    "college_medicine": ("other", 173),
    "global_facts": ("other", 100),
    "human_aging": ("other", 223),
    "management": ("other", 103),
    "marketing": ("other", 234),
    "medical_genetics": ("other", 100),
    "miscellaneous": ("other", 783),
    "nutrition": ("other", 306),
    "professional_accounting": ("other", 282),
    "professional_medicine": ("other", 272),
    "virology": ("other", 166),
}


def subjects_of(category: str) -> tuple[str, ...]:
    """The subjects of one category, in alphabetical order."""
    return tuple(sorted(s for s, (c, _) in SUBJECTS.items() if c == category))
