"""What the default run's two targets mean: the scores of models that read no context.

On the validation split of the default run (same tokenizer, same examples, same draws):

  1. Masked LM: the cross-entropy of a unigram model (token frequencies of the training split, add-one
     smoothed) on the validation tokens, next to ln(V), the loss of a model that knows nothing.
  2. Next-sentence prediction: a bag-of-words rule, IsNext when the TF-IDF cosine of A and B is above
     a threshold fit on two epochs of training pairs. It sees A and B unmasked; the model sees them
     with 15 % of the tokens masked.

Usage: OMP_NUM_THREADS=1 python bench/pretraining_baselines.py [overrides of conf/train.yaml ...]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lmforge.data.bert_dataset import BertPretrainingDataset
from lmforge.io.tokenizers import special_ids
from lmforge.objectives.nsp import NOT_NEXT
from lmforge.run.config import register_resolvers

ROOT = Path(__file__).resolve().parents[1]


def document_tokens(datamodule, documents: np.ndarray) -> list[np.ndarray]:
    """The tokens of each document."""
    corpus = datamodule.tokenized
    return [corpus.document_tokens(int(d)) for d in documents]


def cosines(dataset: BertPretrainingDataset, draws: int, idf: np.ndarray, special: np.ndarray):
    """TF-IDF cosine of A and B, and the label, for every example of ``draws`` epochs."""
    values, labels = [], []
    for key in range(draws * len(dataset)):
        example = dataset.draw(key)
        ids, segment = example["input_ids"], example["token_type_ids"]
        keep = ~np.isin(ids, special)
        a = np.bincount(ids[keep & (segment == 0)], minlength=len(idf)) * idf
        b = np.bincount(ids[keep & (segment == 1)], minlength=len(idf)) * idf
        values.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        labels.append(example["next_sentence_label"])
    return np.asarray(values), np.asarray(labels)


def main() -> None:
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=sys.argv[1:])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    vocab = datamodule.vocab_size
    train_docs, val_docs = datamodule.train_documents, datamodule.val_documents
    print(f"corpus {datamodule.corpus.name}, vocabulary {vocab}, ln(V) = {math.log(vocab):.3f} nats")

    train_tokens = document_tokens(datamodule, train_docs)
    counts = np.bincount(np.concatenate(train_tokens), minlength=vocab) + 1.0
    val_tokens = np.concatenate(document_tokens(datamodule, val_docs))
    unigram = -np.log(counts[val_tokens] / counts.sum()).mean()
    below = math.log(vocab) - unigram
    print(f"1. unigram cross-entropy on validation: {unigram:.3f} nats, {below:.2f} below ln(V)")

    frequency = np.zeros(vocab)  # documents each token occurs in
    for tokens in train_tokens:
        frequency[np.unique(tokens)] += 1
    idf = np.log((1 + len(train_docs)) / (1 + frequency)) + 1
    special = np.asarray(special_ids(datamodule.tokenizer).all())
    train_cos, train_labels = cosines(datamodule.train_set, 2, idf, special)
    val_cos, val_labels = cosines(datamodule.val_set, datamodule.val_draws, idf, special)

    def accuracy(threshold: float, values: np.ndarray, labels: np.ndarray) -> float:
        return float(((values < threshold) == (labels == NOT_NEXT)).mean())

    # Best threshold on the training pairs: below it NotNext, at or above it IsNext.
    order = np.argsort(train_cos)
    values, not_next = train_cos[order], train_labels[order] == NOT_NEXT
    correct = np.cumsum(not_next) + (~not_next).sum() - np.cumsum(~not_next)  # cut after each pair
    cut = int(np.argmax(correct[:-1]))
    threshold = (values[cut] + values[cut + 1]) / 2
    print(
        f"2. TF-IDF cosine of A and B, IsNext above {threshold:.3f}: accuracy "
        f"{accuracy(threshold, train_cos, train_labels):.3f} on {len(train_cos)} training pairs, "
        f"{accuracy(threshold, val_cos, val_labels):.3f} on {len(val_cos)} validation pairs"
    )


if __name__ == "__main__":
    main()
