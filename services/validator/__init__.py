"""The validator service: dramatiq actors that run the broker's jobs. No HTTP here."""
