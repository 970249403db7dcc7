"""The selectivity knob and meter inside the trainers researchers already use.

* :mod:`selectivity.integrations.lightning`: ``SelectivityCallback`` for PyTorch Lightning
  (``pip install 'selectivity[lightning]'``).
* :mod:`selectivity.integrations.hf`: ``add_selectivity(trainer, ...)`` for the Hugging Face
  ``transformers.Trainer`` (``pip install 'selectivity[hf]'``).

Importing this package imports neither Lightning nor transformers: each submodule needs its
own extra, and says so in one line when it is missing. Both put the term of
:class:`~selectivity.SelectivityRegularizer` (or :class:`~selectivity.core.monoloss.MonoLossRegularizer`)
into the gradient of every training step: alpha < 0 discourages selectivity, alpha > 0
encourages it, alpha = 0 is plain training.
"""

__all__: list[str] = []
