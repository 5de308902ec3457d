"""A product specification for tests (issue 9 item 4; services/manufacturing/domain/release.py):
limits as data, each with its source, and results that pass or fail it."""

from __future__ import annotations

from contracts.events import QcResult, SpecificationCriterion

# The criteria, each limit with its source
CRITERIA = [
    SpecificationCriterion(attribute="viability_percent", kind="at_least", low=70, unit="%", method="7-AAD flow",
                           source="FDA CMC guidance for somatic cell therapy INDs (2008): minimum 70 % viable cells"),
    SpecificationCriterion(attribute="sterility", kind="not_detected", method="Ph. Eur. 2.6.27",
                           source="Ph. Eur. 2.6.27 microbiological examination of cell-based preparations"),
    SpecificationCriterion(attribute="endotoxin_iu_per_kg", kind="at_most", high=5, unit="IU/kg",
                           method="Ph. Eur. 2.6.14", source="Ph. Eur. 5.1.10: K = 5 IU/kg, parenteral"),
]
PASSING = [QcResult(attribute="viability_percent", value=92.5), QcResult(attribute="sterility", detected=False),
           QcResult(attribute="endotoxin_iu_per_kg", value=0.4)]
FAILING = [QcResult(attribute="viability_percent", value=61.0), QcResult(attribute="sterility", detected=False),
           QcResult(attribute="endotoxin_iu_per_kg", value=0.4)]
