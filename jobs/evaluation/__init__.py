"""Evaluation of trained models and the experiment report (metrics, figures, Grad-CAM, shortcut audit)."""
