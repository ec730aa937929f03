"""Orchestration: the pipeline (detect → import → optimise → export → verify) and verification."""
