"""One training run: the typed config (:mod:`.config`) and the resumable trainer (:mod:`.trainer`).

``train(config, out_dir)`` trains with the selectivity knob (alpha < 0 discourages
selectivity, alpha > 0 encourages it) into a run directory (:mod:`selectivity.runs`).
"""
