"""Scatter plots of generated 2D samples over the true mixture modes.

Figures are built with `matplotlib.figure.Figure` and rendered by `FigureCanvasAgg` directly, never
through pyplot, so saving a plot touches no global backend (a notebook keeps its inline backend).
"""
import os

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np


def mog_scatter_figure(samples, means, title: str = "", ax: Axes | None = None) -> Figure:
  """Draws samples (small translucent blue dots) and mode centres (red crosses) on `ax`.

  With `ax=None` a new 6x6 inch Figure is made; otherwise the plot goes on the given Axes, so a
  notebook can put several side by side. Returns the Figure holding the Axes.
  """
  if ax is None:
    ax = Figure(figsize=(6, 6)).add_subplot()
  samples, means = np.asarray(samples), np.asarray(means)
  ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.3, color="tab:blue", linewidths=0)
  ax.scatter(means[:, 0], means[:, 1], s=40, marker="x", color="tab:red")
  ax.set_aspect("equal")
  ax.set_title(title)
  return ax.figure


def save_mog_scatter(path: str, samples, means, title: str = "") -> str:
  """Writes the scatter plot of `samples` over `means` as a PNG at `path`; returns `path`."""
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  figure = mog_scatter_figure(samples, means, title)
  FigureCanvasAgg(figure).print_png(path)
  return path
