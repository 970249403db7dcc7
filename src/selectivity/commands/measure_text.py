"""Every selectivity measure of a Hugging Face text model on labelled texts, to CSV and a page.

    summary = measure_text("hf:all-MiniLM-L6-v2", "reviews.csv", "runs/minilm")

The model comes from a local folder (:mod:`selectivity.models.hf`, offline only), the texts
from a CSV, JSON Lines or ``datasets`` folder (:mod:`selectivity.data.text`), tokenized by the
model's own tokenizer and fed in batches of similar length. Its units are, by default, the
hidden neurons of every layer's MLP after the activation, one number per text: the mean over
the text's real tokens of each token's positive part (``tokens``, ``positive_part``: see
:class:`~selectivity.core.probe.Probe`; padding never counts). Writes ``unit_measures.csv``,
``measure_agreement.csv``, ``exemplars.html`` (:mod:`.text_exemplars`) and ``measure.json``
(with the maximum length and truncation rule used) to ``out``; nothing is written when the
input is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..analysis.measures import ranked_measures
from ..config import ConfigError
from ..core import LayerSelectionError
from ..core.probe import Probe
from ..data.text import TextSplit, length_batches, read_text_set, tokenize
from ..models.hf import HFModel, HFModelError, describe_blocks, load_hf, mlp_activations
from ..runs import write_text
from .exemplars import class_histogram_svg
from .measure_any import _check_measures, _dead_units, _stream, _tables, _write_tables, sampling_summary, si_summary
from .text_exemplars import marked_text, text_exemplar_page

__all__ = ["GATHER", "load_text_model", "measure_text", "text_layers"]

#: Texts fed to the measures' streaming states at a time: batches of 32 short texts would pay each
#: state's per-call cost (a top-100 over held and new items, per layer) 32 times as often; 1,024 texts
#: of 9,216 units (MiniLM) hold 38 MB, of 36,864 (BERT-base) 150 MB.
GATHER = 1024


def load_text_model(name: str) -> HFModel:
    """``load_hf`` of a text model; ConfigError (one line) for anything else."""
    try:
        loaded = load_hf(name)
    except HFModelError as err:
        raise ConfigError(str(err)) from None
    if loaded.kind != "text":
        raise ConfigError(f"model {name!r} is an image model: measure it on images (--data DIR of class folders)")
    return loaded


def text_layers(loaded: HFModel, layers) -> list[str] | None:
    """``layers`` as given, or the MLP activation of every layer; LayerSelectionError when there is none."""
    if layers:
        return layers
    found = mlp_activations(loaded.model)
    if not found:
        raise LayerSelectionError(f"{loaded.architecture} of {loaded.folder} has no MLP activation module in its "
                                  f"layers ({describe_blocks(loaded.model)}); name the layers to measure with --layers")
    return found


def _token_values(model, layer: str, unit: int, texts: TextSplit, index: list[int], positive_part: bool,
                  device) -> list[torch.Tensor]:
    """Each text's per-token response of one unit (its real tokens), by a hook of its own."""
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, o: seen.append(o[..., unit].detach()))
    try:
        with torch.no_grad():
            batch = texts.batch(index)
            model(batch.to(device))
    finally:
        handle.remove()
    values = seen[-1].float().cpu()
    values = values.clamp(min=0) if positive_part else values
    return [values[i, : int(batch.attention_mask[i].sum())] for i in range(len(index))]


def _spans(tokenizer, texts: TextSplit, index: list[int]) -> list[tuple[list, list]]:
    """(character spans, special-token tags) of each text's tokens, as tokenized for the measure."""
    record = texts.tokenization
    rule = record["truncation"]
    side = tokenizer.truncation_side
    if rule != "none":
        tokenizer.truncation_side = rule
    try:
        encoded = tokenizer([texts.texts[i] for i in index], add_special_tokens=True, return_offsets_mapping=True,
                            truncation=rule != "none", max_length=record["max_length"] if rule != "none" else None)
    finally:
        tokenizer.truncation_side = side
    out = []
    for row, i in enumerate(index):
        ids, offsets = encoded["input_ids"][row], encoded["offset_mapping"][row]
        if ids != texts.input_ids[i].tolist():
            offsets = [(0, 0)] * len(ids)
        special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
        tags = [tokenizer.convert_ids_to_tokens(t) if s else None for t, s in zip(ids, special)]
        out.append(([tuple(o) for o in offsets], tags))
    return out


def _exemplar_sections(frame, states, order, texts: TextSplit, loaded: HFModel, positive_part: bool, device,
                       units_per_measure: int):
    measures = ranked_measures(frame.columns)
    live = frame[~frame["dead"]]
    sections = []
    for measure in measures:
        best = live.dropna(subset=[measure]).sort_values(measure, ascending=False, kind="stable").head(units_per_measure)
        units = []
        for row in best.itertuples():
            state = states[row.layer]
            pairs = zip(state.top.indices[:, row.unit].tolist(), state.top.values[:, row.unit].tolist())
            # A text with no response (0 after the positive part) does not drive the unit: not shown.
            kept = [(int(order[p]), v) for p, v in pairs if v > 0 or not positive_part]
            index, values = [i for i, _ in kept], [v for _, v in kept]
            tokens = _token_values(loaded.model, row.layer, int(row.unit), texts, index, positive_part, device)
            top = max(float(t.max()) for t in tokens)
            spans = _spans(loaded.tokenizer, texts, index)
            marked = [marked_text(texts.texts[i], offsets, t.tolist(), top, tags)
                      for i, t, (offsets, tags) in zip(index, tokens, spans)]
            units.append({
                "layer": row.layer, "unit": int(row.unit), "preferred": texts.classes[int(row.preferred_class)],
                "values": {m: float(getattr(row, m)) for m in measures},
                "texts": [(m, texts.classes[int(texts.labels[i])], v) for m, i, v in zip(marked, index, values)],
                "svg": class_histogram_svg(state.acc.class_means()[:, row.unit].numpy(), texts.classes,
                                           int(row.preferred_class)),
            })
        sections.append({"measure": measure, "units": units})
    return sections


def measure_text(
    model: str | HFModel,
    data: str | Path | TextSplit,
    out: str | Path,
    layers=None,
    measures="all",
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    max_length: int | None = None,
    truncation: str = "none",
    batch_size: int = 32,
    device: str = "cpu",
    sample_size: int | None = None,
    seed: int = 0,
    top_texts: int = 6,
    units_per_measure: int = 4,
    progress: bool = True,
    tokens: str | None = None,
    positive_part: bool | None = None,
) -> dict:
    """Measure every unit of a text model's layers on labelled texts; write the CSVs and the page.

    Args:
        model: ``hf:DIR`` (or a :class:`~selectivity.models.hf.HFModel` already loaded).
        data: a .csv or .jsonl file or a datasets folder (``split`` of a DatasetDict), or texts.
        layers: module names or globs; None: every layer's MLP activation.
        text_column, label_column: where the texts and labels are.
        max_length, truncation: the most tokens a text may have (None: the model's maximum) and
            what to do with a longer one: ``"none"`` (an error), ``"right"``, ``"left"``.
        batch_size: texts per forward pass (batches of similar length).
        tokens, positive_part: the token rule (``"mean"`` | ``"cls"`` | ``"last"`` | ``"patches"``;
            None: all real tokens, each token's positive part).
        sample_size, seed, top_texts, units_per_measure: as for images.

    Returns:
        dict: the texts and classes, the layers, the tokenization (maximum length, truncation
        rule, texts cut), :func:`si_summary`, :func:`sampling_summary` and the files written.
    """
    _check_measures(measures, sample_size)
    texts = data if isinstance(data, TextSplit) else read_text_set(data, text_column, label_column, split)
    loaded = model if isinstance(model, HFModel) else load_text_model(model)
    texts = tokenize(texts, loaded.tokenizer, max_length, truncation, loaded.max_length)
    chosen = text_layers(loaded, layers)
    net = loaded.model.eval().to(device)
    batches = length_batches(texts.lengths, batch_size)
    order = torch.cat(batches)  # stream position -> text index

    def stream():
        for index in batches:
            yield texts.batch(index).to(device), texts.labels[index]

    try:
        probe = Probe(net, chosen, detach=True, tokens=tokens, positive_part=positive_part)
    except LayerSelectionError:
        raise
    except ValueError as err:  # a token rule the model cannot take (cls without a class token)
        raise ConfigError(f"--tokens: {err}") from None
    with probe:
        rule = probe.tokens
        raw = not probe.positive_part
        states = _stream(net, probe, stream(), texts.num_classes, measures, sample_size, seed, top_texts, progress,
                         len(batches), gather=GATHER)
    frame, agreement = _tables(states)
    sections = _exemplar_sections(frame, states, order, texts, loaded, not raw, device, units_per_measure)
    said = {"mean": "the mean over its real tokens", "cls": "its first token", "last": "its last real token",
            "patches": "the mean over its real tokens after the first"}[rule]
    page = text_exemplar_page(
        f"Selective units of {loaded.folder.name} on {texts.name}", sections, _dead_units(frame), len(frame),
        rule=f"A text's value for a unit is {said} of each token's {'raw value' if raw else 'positive part'}; "
             f"texts tokenized to at most {texts.tokenization['max_length']} tokens (truncation: "
             f"{texts.tokenization['truncation']}).")
    out = Path(out)
    paths = _write_tables(out, frame, agreement)
    paths["exemplars"] = str(out / "exemplars.html")
    write_text(out / "exemplars.html", page)
    summary = {"model": str(loaded.folder), "architecture": loaded.architecture, "data": texts.source,
               "texts": len(texts), "classes": texts.num_classes, "class_names": texts.classes,
               "tokenization": texts.tokenization, "tokens": rule, "positive_part": not raw,
               "layers": list(states), **si_summary(states), "sampling": sampling_summary(states), "files": paths}
    write_text(out / "measure.json", json.dumps(summary, indent=2))
    return summary
