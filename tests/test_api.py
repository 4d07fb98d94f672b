"""The public API and the model variants, trained for a moment on tiny data."""
import pytest

import nertool
from conftest import SAMPLE
from nertool import Config, Span, Tagger, load_corpus, train


def test_public_api_names():
    assert callable(train) and isinstance(nertool.__version__, str)
    assert Span.__name__ == "Span" and Tagger.__name__ == "Tagger"


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
    doc = Tagger.load(str(tmp_path / "run"))("Anna Berg visited Oslo .")
    assert len(doc.tags) == 5


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
