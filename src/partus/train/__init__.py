"""Training (Lightning): one LightningModule for every model kind, fit, cross-validation; self-supervised
pretraining (ssl), self-training rounds with pseudo-labels (semi), site adaptation (adapt)."""
