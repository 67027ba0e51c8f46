"""The model version: its signature, task and reference grammar, its files, and the only model loader."""
