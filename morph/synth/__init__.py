"""Synthetic neurons and image stacks with known ground truth.

* :func:`generate_neuron` grows a seeded procedural neuron (micrometres).
* :func:`render_stack` turns any reconstruction into a brightfield or fluorescence stack
  (:class:`RenderParams`, difficulty :data:`PRESETS`), with the gold tree in the stack's
  frame.
"""

from morph.synth.generator import CELL_TYPES, NeuronParams, generate_neuron, neuron_params
from morph.synth.render import PRESETS, RenderParams, SyntheticStack, clip_to_box, render_params, render_stack

__all__ = [
    "CELL_TYPES",
    "PRESETS",
    "NeuronParams",
    "RenderParams",
    "SyntheticStack",
    "clip_to_box",
    "generate_neuron",
    "neuron_params",
    "render_params",
    "render_stack",
]
