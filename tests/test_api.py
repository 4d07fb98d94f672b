"""The public API and the model variants, trained for a moment on tiny data."""
import pytest
import torch
from conftest import SAMPLE

import nertool
from nertool import Config, Tagger, load_corpus, train
from nertool.errors import NertoolError


def test_public_api_names():
    import importlib.metadata

    assert nertool.__version__ == importlib.metadata.version("nertool")
    for name in nertool.__all__:
        assert getattr(nertool, name) is not None
    from nertool.tag.tagger import Doc as D
    from nertool.tag.tagger import Span as S
    from nertool.tag.tagger import Tagger as T
    from nertool.training.loop import train as tr
    assert (nertool.Tagger, nertool.Span, nertool.Doc, nertool.train) == (T, S, D, tr)
    with pytest.raises(AttributeError):
        nertool.no_such_name  # noqa: B018


@pytest.mark.parametrize("variant", [
    {"char_encoder": "lstm"}, {"rnn": "gru", "num_layers": 2}, {"char_encoder": "none", "case_features": False},
])
def test_variants_train_save_load_tag(tmp_path, variant):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=16, char_hidden=8, **variant),
                 train=base.train.replace(epochs=2, batch_size=16, threads=1))
    result = train(corpus, cfg, tmp_path / "run")
    assert result.epochs_run == 2 and 0 <= result.best_dev_f1 <= 1
    tagger = Tagger.load(str(tmp_path / "run"))
    doc = tagger("Anna Berg visited Oslo .")
    assert [t.text for t in doc.tokens] == ["Anna", "Berg", "visited", "Oslo", "."]
    assert len(doc.tags) == 5 and set(doc.tags) <= set(tagger.labels)
    assert all(doc.text[s.start:s.end] == s.text and 0 < s.score <= 1 for s in doc.spans)
    assert doc.tags == Tagger.load(str(tmp_path / "run")).tag_tokens([[t.text for t in doc.tokens]])[0].tags


CONLLU = "".join(
    f"# sent_id = {i}\n1\tTom\tTom\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\n2\truns\trun\tVERB\tVBZ\t_\t0\troot\t_\t_\n"
    f"3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
    for i in range(30)
)


def test_pos_tagging_from_conllu(tmp_path):
    p = tmp_path / "pos.conllu"
    p.write_text(CONLLU)
    corpus = load_corpus(p, p)
    assert corpus.scheme == "none"
    base = Config()
    cfg = Config(model=base.model.replace(hidden_size=16, char_hidden=8), train=base.train.replace(epochs=15, lr=0.02, threads=1))
    train(corpus, cfg, tmp_path / "pos")
    res = Tagger.load(str(tmp_path / "pos")).tag_sentences([["Tom", "runs", "."]])[0]
    assert res.tags == ["PROPN", "VERB", "PUNCT"] and res.chunks == []


def _tiny_config(epochs: int = 2):
    base = Config()
    return Config(model=base.model.replace(hidden_size=16, char_hidden=8),
                  train=base.train.replace(epochs=epochs, batch_size=16, threads=1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_training_on_absent_cuda_is_a_clear_error(tmp_path):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll")
    with pytest.raises(NertoolError, match="CUDA is not available"):
        train(corpus, _tiny_config(), tmp_path / "run", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_saves_a_model_that_tags_on_cpu(tmp_path):
    corpus = load_corpus(SAMPLE / "train.conll", SAMPLE / "dev.conll", SAMPLE / "test.conll")
    result = train(corpus, _tiny_config(3), tmp_path / "run", device="cuda")
    assert result.epochs_run == 3 and result.test is not None
    # the saved model, scored on CPU, gives the test scores measured on the GPU
    from nertool.training.evaluate import evaluate_file
    on_cpu = evaluate_file(str(tmp_path / "run"), SAMPLE / "test.conll")
    assert abs(on_cpu["f1"] - result.test["f1"]) < 0.02
