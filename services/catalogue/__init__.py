"""The shared library of the broker: models, repositories, settings, queue set-up. No HTTP here."""
