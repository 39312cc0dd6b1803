"""Training (Lightning): one LightningModule for every model kind, fit, cross-validation."""
