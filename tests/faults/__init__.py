"""Fault tests: real processes and services, really broken (killed, restarted, emptied)."""
