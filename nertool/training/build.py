"""A fresh model for a corpus: label set, vocabularies, pretrained rows; the encoded training split."""
from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from nertool.config import Config, TrainConfig
from nertool.data import tags as tagmod
from nertool.data.conll import Corpus, Sentence
from nertool.model.embeddings import load_vectors, pretrained_rows
from nertool.model.encoding import Encoded, Encoder
from nertool.model.network import BiLstmCrf
from nertool.model.vocab import CharVocab, Normalization, WordVocab
from nertool.store.checkpoint import ModelBundle
from nertool.training.report import Reporter


def internal_labels(corpus_labels: Sequence[str], scheme: str, internal: str) -> tuple[list[str], str]:
    """Label set used inside the model and its scheme: every prefix of every type, so that the
    constraint mask is complete and unseen prefixes can still be predicted."""
    if scheme == "none":
        return sorted(corpus_labels), "none"
    target = scheme if internal == "same" else "BIOES"
    types = tagmod.entity_types(corpus_labels)
    prefixes = "BIES" if target == "BIOES" else "BI"
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes], target



def split_dev(corpus: Corpus, tc: TrainConfig) -> tuple[list[Sentence], list[Sentence] | None]:
    """Training and dev sentences: the corpus's dev split, or ``tc.dev_fraction`` of train held
    out (a seeded shuffle), or no dev set."""
    train_sents = corpus.sentences("train")
    if "dev" in corpus.splits:
        return train_sents, corpus.sentences("dev")
    if tc.dev_fraction <= 0:
        return train_sents, None
    order = list(range(len(train_sents)))
    random.Random(tc.seed).shuffle(order)
    n_dev = max(1, int(len(order) * tc.dev_fraction))
    # a partially tagged sentence cannot be scored: the held-out ones are complete sentences
    order.sort(key=lambda i: tagmod.UNKNOWN in train_sents[i][1])  # stable: complete ones first, shuffled
    return [train_sents[i] for i in order[n_dev:]], [train_sents[i] for i in order[:n_dev]]



MAX_TRAIN_TOKENS = 250  # CoNLL-2003's longest sentence has 124 tokens; a 4,000-token one took minutes a batch


def cut_long(sentences: Sequence[Sentence], limit: int = MAX_TRAIN_TOKENS) -> tuple[list[Sentence], str | None]:
    """``sentences`` with every one longer than ``limit`` tokens cut into windows of at most
    ``limit`` (where it can, before an ``O`` or a chunk's first tag, so that no chunk is split), and
    a note saying how many were cut, or None. A recurrent network's step is sequential, so one very
    long training sentence would make its batch's time grow with it."""
    out: list[Sentence] = []
    cut, longest = 0, 0
    for toks, tags in sentences:
        if len(toks) <= limit:
            out.append((toks, tags))
            continue
        cut, longest = cut + 1, max(longest, len(toks))
        start = 0
        while start < len(toks):
            end = min(len(toks), start + limit)
            if end < len(toks):
                end = next((i for i in range(end, start + limit // 2, -1)
                            if tags[i] == "O" or tags[i][:2] in ("B-", "S-", "U-")), end)
            out.append((list(toks[start:end]), list(tags[start:end])))
            start = end
    if not cut:
        return out, None
    return out, (f"{cut} training sentence(s) longer than {limit} tokens (the longest {longest}) were cut into "
                 f"windows of at most {limit} tokens, so that an epoch's time stays linear in the corpus")


def trained_labels(corpus: Corpus, train_sents: Sequence[Sentence]) -> tuple[list[str], str | None]:
    """The corpus's labels that the training sentences hold (a model can only learn those), and
    a warning naming the labels (or entity types) found only in dev or test, or None."""
    seen = {t for _, tags in train_sents for t in tags} - {tagmod.UNKNOWN}
    labels = [label for label in corpus.labels if label in seen]
    if corpus.scheme == "none":
        missing = [label for label in corpus.labels if label not in seen]
    else:
        missing = sorted(set(tagmod.entity_types(corpus.labels)) - set(tagmod.entity_types(labels)))
    if not missing:
        return labels, None
    return labels, (f"{', '.join(missing)} occur in dev or test but not in training: the model cannot predict "
                    f"{'them' if len(missing) > 1 else 'it'} (add training examples, or drop them from dev and test)")


def build_bundle(config: Config, train_sents: Sequence[Sentence], corpus_labels: Sequence[str], scheme: str,
                 reporter: Reporter) -> ModelBundle:
    """A freshly initialised model with vocabularies built from ``train_sents`` alone."""
    mc = config.model
    pre_words, pre_vecs = (None, None)
    if mc.embeddings:
        reporter.message(f"loading embeddings {mc.embeddings}")
        pre_words, pre_vecs = load_vectors(mc.embeddings)
    words = WordVocab.build((t for t, _ in train_sents), pre_words, Normalization.from_config(mc))
    chars = CharVocab.build(t for t, _ in train_sents)
    labels, internal = internal_labels(corpus_labels, scheme, config.train.internal_scheme)
    model = BiLstmCrf(mc, len(words), words.n_tuned, len(chars), labels, internal, 0 if pre_vecs is None else pre_vecs.shape[1])
    model.set_char_kinds(chars.chars)
    if pre_vecs is not None:
        rows = torch.from_numpy(pretrained_rows(words, pre_words))
        has = rows >= 0
        table = torch.zeros(len(words), pre_vecs.shape[1])
        table[has] = torch.from_numpy(pre_vecs[rows[has].numpy()])
        if mc.pretrained_precision == "float16":  # trained on exactly what the model file stores
            table = table.half().float()
        model.init_embeddings(table, has)
        reporter.message(f"pretrained vectors for {int(has[: words.n_tuned].sum())}/{words.n_tuned} training words, {len(words)} words in all")
    else:
        model.init_embeddings(None, None)
    return ModelBundle(model, words, chars, scheme, internal)



def encode_split(bundle: ModelBundle, encoder: Encoder, sentences: Sequence[Sentence],
                 corpus_labels: Sequence[str] = ()) -> list[Encoded]:
    """Sentences as tag ids of the model's labels; a partially tagged one (``?`` tags) also gets
    the labels each token may take (:func:`nertool.data.tags.allowed_labels`; ``corpus_labels``,
    those an unknown tag may be), and its unknown tokens tag id 0."""
    index = {l: i for i, l in enumerate(bundle.labels)}
    convert = bundle.internal_scheme != bundle.scheme and bundle.scheme != "none"
    toks, tag_ids, partial = [], [], {}
    for k, (t, g) in enumerate(sentences):
        toks.append(t)
        if tagmod.UNKNOWN in g:
            sets = tagmod.allowed_labels(g, bundle.scheme, bundle.internal_scheme, bundle.labels, corpus_labels)
            allowed = torch.zeros(len(g), len(bundle.labels), dtype=torch.bool)  # shape: (seq_len, num_tags)
            for i, ids in enumerate(sets):
                allowed[i, ids] = True
            partial[k] = allowed
            tag_ids.append([ids[0] if len(ids) == 1 else 0 for ids in sets])
            continue
        if convert:
            g = tagmod.convert(g, bundle.scheme, bundle.internal_scheme)
        tag_ids.append([index[x] for x in g])
    items = encoder.encode(toks, tag_ids)
    for k, allowed in partial.items():
        items[k].allowed = allowed
    return items

