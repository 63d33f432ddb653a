"""Prefect flows over the pipeline (the orchestration layer; the work lives in `pipeline`)."""
