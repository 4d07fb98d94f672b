import numpy as np
import pytest

from nertool.errors import DataFormatError, NertoolError
from nertool.model.embeddings import load_text_vectors, load_vectors


def test_glove_text_without_header(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("the 0.1 0.2 0.3\nparis 1 2 3\n")
    words, vecs = load_text_vectors(p)
    assert words == ["the", "paris"] and vecs.shape == (2, 3) and vecs.dtype == np.float32


def test_word2vec_text_with_header(tmp_path):
    p = tmp_path / "w.txt"
    p.write_text("2 2\nthe 0.1 0.2\nparis 1 2\n")
    words, vecs = load_text_vectors(p)
    assert words == ["the", "paris"] and vecs.shape == (2, 2)


def test_wrong_dimension_names_the_line(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("the 0.1 0.2 0.3\nparis 1 2\n")
    with pytest.raises(DataFormatError) as e:
        load_text_vectors(p)
    assert e.value.line == 2 and "expected 3" in str(e.value)


def test_missing_embeddings():
    with pytest.raises(NertoolError, match="glove-6b-50d"):
        load_vectors("/nonexistent/vectors.txt")


def test_pretrained_only_words_usable_at_tagging(tmp_path, tiny_corpus):
    """A word absent from training but present in the vectors gets its pretrained vector."""
    import torch

    from nertool.config import Config
    from nertool.data.conll import load_corpus
    from nertool.training.build import build_bundle
    from nertool.training.report import SilentReporter

    p = tmp_path / "v.txt"
    p.write_text("paris 1 0 0 0\nzanzibar 0 1 0 0\n")
    corpus = load_corpus(tiny_corpus["train"])
    cfg = Config(model=Config().model.replace(embeddings=str(p)))
    bundle = build_bundle(cfg, corpus.sentences("train"), corpus.labels, corpus.scheme, SilentReporter())
    [[zid, pid]] = bundle.words.encode([["Zanzibar", "Paris"]])
    assert zid >= bundle.words.n_tuned > pid > 1
    bundle.model.eval()
    vec = bundle.model.emitter.embed_words(torch.tensor([[zid, pid]]))
    assert torch.equal(vec[0, 0], torch.tensor([0.0, 1, 0, 0]))
    assert torch.equal(vec[0, 1], torch.tensor([1.0, 0, 0, 0]))  # tuned part starts at zero


def test_compacted_model_tags_identically(tmp_path, tiny_corpus):
    """Folding the trained corrections into the pretrained rows changes no prediction."""
    from nertool.config import Config
    from nertool.data.conll import load_corpus, read_conll
    from nertool.store.checkpoint import compact, load_model, save_model
    from nertool.training.evaluate import predict
    from nertool.training.loop import train

    p = tmp_path / "v.txt"
    p.write_text("paris 1 0 0 0\noslo 0 1 0 0\nzanzibar 0 0 1 0\nlima 0 0 0 1\n")
    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"])
    base = Config()
    train(corpus, Config(model=base.model.replace(embeddings=str(p), hidden_size=16),
                         train=base.train.replace(epochs=3, threads=1)), tmp_path / "run")
    full = load_model(tmp_path / "run")
    small = compact(full, keep_extra=1)
    assert len(small.words) == full.words.n_tuned + 1 and small.words.n_tuned == 2
    save_model(tmp_path / "small", small, half=True)
    reloaded = load_model(tmp_path / "small")
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    assert predict(small, sents) == predict(full, sents)
    assert predict(reloaded, sents) == predict(full, sents)  # float16 storage
    assert (tmp_path / "small" / "model.safetensors").stat().st_size < (tmp_path / "run" / "model.safetensors").stat().st_size


def test_pack4_round_trip_and_error():
    import torch

    from nertool.store.checkpoint import pack4, unpack4

    g = torch.Generator().manual_seed(0)
    # columns with exactly 16 distinct, equally frequent values are coded exactly
    exact = torch.stack([torch.randperm(160, generator=g) % 16 * (j + 1.5) for j in range(5)], dim=1).float()
    codes, levels = pack4(exact)
    assert codes.dtype == torch.uint8 and codes.shape == (160, 3) and levels.shape == (5, 16)
    assert torch.equal(unpack4(codes, levels), exact)
    x = torch.randn(2000, 8, generator=g)
    err = ((unpack4(*pack4(x)) - x) ** 2).mean() / (x**2).mean()
    assert err < 0.015  # 16 Lloyd-Max levels of a Gaussian: about 0.0095
    assert unpack4(*pack4(torch.randn(0, 3))).shape == (0, 3)


def test_packed_model_stores_pretrained_only_rows_in_4_bits(tmp_path, tiny_corpus):
    import torch

    from nertool.config import Config
    from nertool.data.conll import load_corpus, read_conll
    from nertool.store.checkpoint import compact, load_model, pack4, save_model, unpack4
    from nertool.training.evaluate import predict
    from nertool.training.loop import train

    g = torch.Generator().manual_seed(1)
    words = ["paris", "oslo", "zanzibar", "lima"] + [f"extra{i}" for i in range(300)]
    vecs = torch.randn(len(words), 6, generator=g)
    p = tmp_path / "v.txt"
    p.write_text("".join(w + " " + " ".join(f"{v:.4f}" for v in row.tolist()) + "\n" for w, row in zip(words, vecs)))
    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"])
    base = Config()
    train(corpus, Config(model=base.model.replace(embeddings=str(p), hidden_size=16),
                         train=base.train.replace(epochs=2, threads=1)), tmp_path / "run")
    small = compact(load_model(tmp_path / "run"), keep_extra=10**6)
    n = small.model.n_tuned
    save_model(tmp_path / "half", small, half=True)
    save_model(tmp_path / "packed", small, half=True, pack=True)
    packed = load_model(tmp_path / "packed")
    table, before = packed.model.emitter.pretrained, small.model.emitter.pretrained
    assert torch.equal(table[:n], before[:n].half().float())  # trained rows: float16
    assert torch.equal(table[n:], unpack4(*pack4(before[n:])))  # pretrained-only rows: 4-bit codes
    assert not torch.equal(table[n:], before[n:].half().float())
    # the packed model is the float16 model with those rows replaced, nothing else
    ref = load_model(tmp_path / "half")
    ref.model.emitter.pretrained.data.copy_(table)
    assert all(torch.equal(a, b) for a, b in zip(ref.model.state_dict().values(), packed.model.state_dict().values()))
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    assert predict(packed, sents) == predict(ref, sents)
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("packed") < size("half")


def test_cased_vocabulary_keeps_training_spellings_and_falls_back_to_lower_case():
    from nertool.model.vocab import UNK_ID, Normalization, WordVocab

    v = WordVocab.build([["Apple", "apple", "US", "us", "1996"]], ["apple", "zanzibar", "the", "us"], Normalization(cased=True))
    ids = dict(zip(["Apple", "apple", "US", "us", "0000"], v.encode([["Apple", "apple", "US", "us", "2001"]])[0]))
    assert len(set(ids.values())) == 5 and max(ids.values()) < v.n_tuned  # one trainable row per spelling
    [[upper, title, lower, num, unk]] = v.encode([["APPLE", "Zanzibar", "zanzibar", "1234", "Qqq"]])
    assert upper == ids["apple"]  # unknown spelling -> the lower-cased training word
    assert title == lower >= v.n_tuned  # pretrained-only words are stored lower-cased
    assert num == ids["0000"] and unk == UNK_ID
    assert v.pretrained_key("Apple") == "apple"
    # the default vocabulary folds case for every word
    plain = WordVocab.build([["Apple", "apple"]], ["apple"])
    assert plain.encode([["Apple", "apple"]]) == [[2, 2]]


def test_cased_model_rows_start_from_the_lower_cased_vector_and_export_alike(tmp_path, tiny_corpus):
    import torch

    from nertool.config import Config
    from nertool.data.conll import load_corpus, read_conll
    from nertool.store.checkpoint import compact, load_model, save_model
    from nertool.store.export import export
    from nertool.store.loading import load_exported
    from nertool.training.evaluate import predict
    from nertool.training.loop import train

    p = tmp_path / "v.txt"
    p.write_text("nordic 1 0 0 0\nrail 0 1 0 0\nzanzibar 0 0 1 0\nlima 0 0 0 1\n")
    corpus = load_corpus(tiny_corpus["train"], tiny_corpus["dev"])
    base = Config()
    cfg = Config(model=base.model.replace(embeddings=str(p), hidden_size=16, cased_words=True),
                 train=base.train.replace(epochs=2, threads=1))
    train(corpus, cfg, tmp_path / "run")
    bundle = load_model(tmp_path / "run")
    words = bundle.words
    assert words.cased
    [[nordic, nordic_low, zanz_title, zanz_low]] = words.encode([["Nordic", "NORDIC", "Zanzibar", "zanzibar"]])
    assert nordic < words.n_tuned and zanz_title == zanz_low >= words.n_tuned
    assert torch.equal(bundle.model.emitter.pretrained[nordic], torch.tensor([1.0, 0, 0, 0]))
    # the exported file looks words up the same way, and tags the same
    out = export(bundle, tmp_path / "m.pt")
    m = torch.jit.load(str(out))
    probe = ["Nordic", "NORDIC", "nordic", "Zanzibar", "ZANZIBAR", "Lima", "Qqq", "1990", "İstanbul"]
    assert [m.word_id(w) for w in probe] == words.encode([probe])[0]
    sents = [t for t, _ in read_conll(tiny_corpus["test"])]
    assert predict(load_exported(out), sents) == predict(bundle, sents)
    # compaction keeps the cased lookup
    small = compact(bundle, keep_extra=10)
    save_model(tmp_path / "small", small)
    assert load_model(tmp_path / "small").words.encode([probe]) == words.encode([probe])
    assert predict(small, sents) == predict(bundle, sents)
