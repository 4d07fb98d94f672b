"""Issue 37: ``nertool serve``. Request and response shapes, offsets equal to the Tagger's,
batching (concurrent answers equal sequential ones), the 400/401/413/429/504 paths, the metrics
read back by prometheus-client's own parser, and SIGTERM draining in a real process."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import popen_cli, run_cli, wait_until

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from nertool import Tagger  # noqa: E402
from nertool.serving import ServeConfig, create_app  # noqa: E402

TEXTS = ["Anna Berg visited Oslo on Monday.\r\nShe met Tim Cook there.", "EU rejects German call.",
         "Peter Blackburn works for Acme Corp in New York."]


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return Tagger.load(str(tiny_model))


def client(tagger, **settings) -> TestClient:
    return TestClient(create_app(ServeConfig(model="tiny", **settings), tagger=tagger))


def test_records_have_the_docs_shape_and_the_taggers_offsets(tagger):
    with client(tagger) as c:
        one = c.post("/tag", json={"text": TEXTS[0]}).json()
        many = c.post("/tag", json={"texts": TEXTS}).json()
        toks = c.post("/tag", json={"tokens": [["EU", "rejects", "German", "call"], []]}).json()
        hf = c.post("/tag", json={"texts": TEXTS, "format": "hf"}).json()
        info = c.get("/info").json()
    assert one == many[0] and len(many) == 3 and set(one) == {"text", "tokens", "spans"}
    for text, rec, doc, ents in zip(TEXTS, many, tagger.pipe(TEXTS), hf):
        assert rec["text"] == text
        assert [(t["text"], t["start"], t["end"]) for t in rec["tokens"]] == [(t.text, t.start, t.end) for t in doc.tokens]
        assert [(s["start"], s["end"], s["label"]) for s in rec["spans"]] == [(s.start, s.end, s.label) for s in doc.spans]
        assert all(text[s["start"]:s["end"]] == s["text"] for s in rec["spans"])
        assert [(e["start"], e["end"], e["entity_group"], e["word"]) for e in ents] == \
            [(s["start"], s["end"], s["label"], s["text"]) for s in rec["spans"]]
    assert toks[0]["text"] == "EU rejects German call" and toks[1]["tokens"] == []
    assert info["labels"] == tagger.labels and info["scheme"] == tagger.scheme and "api_key" not in info["settings"]


def test_the_fastapi_route_answers_as_the_services_own_path(tagger):
    """``POST /tag`` is answered by the service's ASGI layer; the FastAPI route behind it (what
    the OpenAPI page describes, and what an app mounted without that layer uses) answers alike."""
    plain = create_app(ServeConfig(model="tiny", max_bytes=100), tagger=tagger)
    plain.user_middleware.clear()  # no observing layer: requests reach FastAPI's routing
    bodies = [{"text": TEXTS[0]}, {"texts": TEXTS, "format": "hf"}, {"text": ""}, {"text": "x" * 200}, {"txt": "a"}]
    with client(tagger, max_bytes=100) as ours, TestClient(plain) as theirs:
        for body in bodies:
            a, b = ours.post("/tag", json=body), theirs.post("/tag", json=body)
            assert (a.status_code, a.json()) == (b.status_code, b.json()), body
        assert "/tag" in theirs.get("/openapi.json").json()["paths"]


def test_nbest_and_marginals_come_back_per_sentence_and_token(tagger):
    with client(tagger) as c:
        rec = c.post("/tag", json={"text": TEXTS[0], "nbest": 2, "marginals": True}).json()
    assert len(rec["nbest"]) == 2 and all(1 <= len(n) <= 2 for n in rec["nbest"])  # two sentences
    assert len(rec["marginals"]) == len(rec["tokens"])
    assert all(abs(sum(m.values()) - 1) < 1e-4 for m in rec["marginals"])


def test_concurrent_requests_are_batched_and_answered_as_sequential_ones(tagger):
    texts = [f"{t} Request {i} ." for i in range(24) for t in TEXTS[:1]]
    with client(tagger, max_wait_ms=50) as c:
        sequential = [c.post("/tag", json={"text": t}).json() for t in texts]
        with ThreadPoolExecutor(12) as pool:
            concurrent = list(pool.map(lambda t: c.post("/tag", json={"text": t}).json(), texts))
        metrics = c.get("/metrics").text
    assert concurrent == sequential
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(metrics)}
    batches = {s.labels.get("le"): s.value for s in fams["nertool_batch_requests"].samples if s.name.endswith("_bucket")}
    n_batches = next(s.value for s in fams["nertool_batch_requests"].samples if s.name.endswith("_count"))
    assert batches["1.0"] < n_batches, "some batch must have gathered more than one request"
    requests = {(s.labels["path"], s.labels["status"]): s.value for s in fams["nertool_requests"].samples
                if s.name == "nertool_requests_total"}
    assert requests[("/tag", "200")] == 48
    assert next(s.value for s in fams["nertool_tokens"].samples if s.name == "nertool_tokens_total") > 0


@pytest.mark.parametrize("body, needle", [
    (b"", "empty body"), (b"{", "Invalid JSON"), (b'{"text": 3}', "text: Input should be a valid string"),
    (b'{"text": "  "}', "text is empty"), (b'{"text": "a", "texts": ["b"]}', "exactly one of"),
    (b'{"text": "a", "nbest": 1000}', "nbest"), (b'{"text": "a", "doc_context": 1e400}', "doc_context"),
    (b'{"text": "a", "bogus": 1}', "bogus"), (b"[1, 2]", "object"), (b'{"tokens": ["a b"]}', "tokens.0"),
    (b'{"text": "a", "format": "hf", "nbest": 2}', "format hf"),
])
def test_bad_requests_get_400_and_one_line_json(tagger, body, needle):
    with client(tagger) as c:
        r = c.post("/tag", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and needle in r.json()["error"] and "\n" not in r.text, r.text


def test_size_key_and_unknown_paths(tagger):
    with client(tagger, max_bytes=100, api_key="s3cret") as c:
        assert c.post("/tag", json={"text": "x" * 200}, headers={"X-API-Key": "s3cret"}).status_code == 413
        assert c.post("/tag", json={"text": "Anna"}).status_code == 401
        assert c.post("/tag", json={"text": "Anna"}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/info").status_code == 401
        assert c.post("/tag", json={"text": "Anna"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").json() == {"status": "alive"} and c.get("/ready").json() == {"status": "ready"}
        r = c.get("/nowhere")
        assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
        assert c.get("/tag").status_code == 405
        spec = c.get("/openapi.json").json()
        assert {"/tag", "/info", "/health", "/ready", "/metrics"} <= set(spec["paths"])
        assert "text" in spec["paths"]["/tag"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        for page in ("/", "/docs"):  # offline: nothing fetched from elsewhere
            html = c.get(page).text
            assert "<html" in html and "http://" not in html and "https://" not in html and "//cdn" not in html


def test_a_full_queue_answers_429_and_a_slow_answer_504(tagger):
    gate = threading.Event()

    class Slow:  # the tagger, held at a gate
        def __getattr__(self, name):
            return getattr(tagger, name)

        def tag_documents(self, docs, opts):
            gate.wait(10)
            return tagger.tag_documents(docs, opts)

    with TestClient(create_app(ServeConfig(model="tiny", max_queue=1, timeout_s=0.5), tagger=Slow())) as c:
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(c.post, "/tag", json={"text": "one"})  # taken by the model thread, held
            time.sleep(0.2)
            second = pool.submit(c.post, "/tag", json={"text": "two"})  # waits in the queue
            time.sleep(0.2)
            third = c.post("/tag", json={"text": "three"})
            assert third.status_code == 429 and third.headers["Retry-After"] == "1"
            assert first.result().status_code == 504 and "not answered within 0.5 s" in first.result().json()["error"]
            gate.set()
            second.result()
        assert c.post("/tag", json={"text": "Anna met Bo."}).status_code == 200  # the service goes on


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, body: dict, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/tag", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_drains_the_requests_in_flight_then_exits_0(tiny_model, tmp_path):
    import subprocess

    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    p = popen_cli("serve", tiny_model, "--port", port, "--max-wait-ms", "200", stdout=log, stderr=log)
    try:
        assert wait_until(lambda: _ready(port), 90), (tmp_path / "serve.log").read_text()
        long_text = "Anna Berg visited Oslo on Monday . " * 3000
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(_post, port, {"text": long_text}) for _ in range(8)]
            time.sleep(0.1)
            p.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a[0] for a in answers] == [200] * 8
        assert p.wait(60) == 0
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    finally:
        p.kill()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert '"POST /tag HTTP/1.1" 200' in text  # the access log: a line per request


def test_a_misspelt_model_is_one_line():
    r = run_cli("serve", "en-fats")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "en-fats" in r.stderr, r.stderr


CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMEDRIVER), reason="needs Debian's chromium-driver (make setup installs it)")
def test_the_page_highlights_the_entities_in_a_real_browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    p = popen_cli("serve", "en-fast", "--port", port)
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    browser = None
    try:
        assert wait_until(lambda: _ready(port), 90)
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        browser.get(f"http://127.0.0.1:{port}/")
        text = "Angela Merkel met Emmanuel Macron in Paris."
        box = browser.find_element(By.ID, "text")
        box.clear()
        box.send_keys(text)
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "1")
        marks = browser.find_elements(By.TAG_NAME, "mark")
        shown = [(m.get_attribute("data-label"), m.get_attribute("title").split()[0]) for m in marks]
        status, expected = _post(port, {"text": text})
        assert status == 200 and shown == [(s["label"], s["label"]) for s in expected["spans"]]
        assert [m.text.rsplit("\n", 1)[0].removesuffix(m.get_attribute("data-label")).strip() for m in marks] == \
            [s["text"] for s in expected["spans"]]
        assert all(float(m.get_attribute("title").split()[1]) > 0.5 for m in marks)  # the score on hover
        assert browser.find_element(By.ID, "result").text.replace("\n", " ").startswith("Angela Merkel")
        assert json.loads(browser.find_element(By.ID, "json").text) == expected
    finally:
        if browser is not None:
            browser.quit()
        p.send_signal(signal.SIGTERM)
        p.wait(60)



def test_the_services_processes_get_a_bounded_kernel_cache():
    """oneDNN keeps a prepared LSTM kernel per batch shape (1,024 by default), which made the
    service's RSS creep; nertool serve caps it unless the user chose a size."""
    from nertool.runtime import KERNEL_CACHE, bound_kernel_caches

    env: dict[str, str] = {}
    bound_kernel_caches(env)
    assert env == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(KERNEL_CACHE)}
    mine = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "4"}
    bound_kernel_caches(mine)
    assert mine["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "4"
