"""The retraining pipeline: runs, the lock, the steps, the fresh-holdout evaluation."""
