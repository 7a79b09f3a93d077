"""The broker service: the HTTP API (FastAPI). A thin adapter over services/catalogue."""
