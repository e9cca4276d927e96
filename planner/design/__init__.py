"""Experiment design: which small runs to train for the planning decision, model shapes, configs, re-planning."""

from .shapes import Shape, ShapeError, shape

__all__ = ["Shape", "ShapeError", "shape"]
