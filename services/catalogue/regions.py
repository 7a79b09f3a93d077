"""NHS England's seven regions (ODS codes), as in the ODS trust list's national grouping."""

from __future__ import annotations

REGIONS: dict[str, str] = {
    "Y56": "London",
    "Y58": "South West",
    "Y59": "South East",
    "Y60": "Midlands",
    "Y61": "East of England",
    "Y62": "North West",
    "Y63": "North East and Yorkshire",
}
