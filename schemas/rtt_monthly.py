"""rtt_monthly: referral to treatment incomplete pathways waiting over 18 and 52 weeks."""

from __future__ import annotations

from schemas.conventions import ORG_CODE, PERIOD, count_column, return_rules
from schemas.model import Burden, Dataset, Item, NotGreaterThan

_RTT = (
    "referral to treatment (RTT) incomplete pathways at the end of the month: patients still"
    " waiting to start consultant-led treatment, counted from referral (or the clock start)"
    " to the last day of the month, as in NHS England's RTT waiting times collection"
)

ITEMS: tuple[Item, ...] = (
    Item(
        code="rtt_over_18_weeks",
        name="RTT waits over 18 weeks",
        definition=f"Number of {_RTT}, who have waited more than 18 weeks.",
        unit="patients",
        value_type="integer",
        # A snapshot at the month's end: a quarter's figure is its last month's.
        aggregation="last",
        org_aggregation="sum",
        disaggregation=(),
        primary_dataset="rtt_monthly",
        improvement_direction="decrease",
        # Not "RTT waiting list" (all incomplete pathways) nor "18-week performance" (a percentage).
        synonyms=(
            "18 week waiters",
            "RTT waiting list over 18 weeks",
            "patients waiting more than 18 weeks",
            "incomplete pathways over 18 weeks",
            "RTT 18-week breaches",
        ),
    ),
    Item(
        code="rtt_over_52_weeks",
        name="RTT waits over 52 weeks",
        definition=f"Number of {_RTT}, who have waited more than 52 weeks.",
        unit="patients",
        value_type="integer",
        aggregation="last",
        org_aggregation="sum",
        disaggregation=(),
        primary_dataset="rtt_monthly",
        improvement_direction="decrease",
        # Not "long waits": that also names the 65-, 78- and 104-week measures.
        synonyms=(
            "52 week waiters",
            "year-long waits",
            "patients waiting over a year",
            "patients waiting more than 52 weeks",
            "incomplete pathways over 52 weeks",
            "RTT 52-week breaches",
        ),
    ),
)

DATASET = Dataset(
    code="rtt_monthly",
    version=1,
    title="Monthly referral to treatment waits",
    description=(
        "One row per trust per month: the numbers of incomplete referral to treatment pathways"
        " at the end of the month waiting over 18 weeks and over 52 weeks. Those over 52 weeks"
        " are among those over 18 weeks, so never more."
    ),
    columns=(
        PERIOD,
        ORG_CODE,
        count_column(
            "waits_over_18_weeks",
            "Incomplete RTT pathways at the end of the month waiting more than 18 weeks.",
        ),
        count_column(
            "waits_over_52_weeks",
            "Incomplete RTT pathways at the end of the month waiting more than 52 weeks.",
        ),
    ),
    key=("period", "org_code"),
    items={
        "rtt_over_18_weeks": "waits_over_18_weeks",
        "rtt_over_52_weeks": "waits_over_52_weeks",
    },
    rules=(
        *return_rules(),
        NotGreaterThan(column="waits_over_52_weeks", other="waits_over_18_weeks"),
    ),
    burden=Burden(
        base_minutes=90,
        minutes_per_item=15,
        source=(
            "The broker's documented Standard Cost Model estimate (configurable): about 90"
            " minutes to validate the month-end waiting list in the patient administration"
            " system and have it signed off, plus 15 minutes for each item checked."
        ),
    ),
)
