"""Training machinery: trainer, checkpoints, optimisers and schedules, losses, metrics, DDP."""
