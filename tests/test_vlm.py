"""The VLM request path against a real OpenAI-compatible HTTP server running a tiny random Qwen2.5-VL.

The fixture model's answers are noise; these tests check what is sent and what comes back
(images as data URLs, schemas, usage, timeouts, errors), never what the model says.
"""

import base64
import io
import json

import nbformat
import pytest
from PIL import Image

from sparkbooks import documents, llm
from sparkbooks.documents import vlm
from sparkbooks.exceptions import ImageInputError, RequestTimeoutError, VisionUnsupportedError

from . import tiny_qwen_vl


@pytest.fixture(scope="module")
def tiny():
    base_url, state, server = tiny_qwen_vl.serve()
    yield llm.connect(base_url), state
    server.shutdown()
    server.server_close()


def _photo() -> "vlm.LoadedImage":
    """A 640×480 image with detail everywhere, so two crops never share their pixels."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return vlm.LoadedImage(Image.fromarray(pixels), "noise")


def _png(size, colour="white") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unreadable_inputs_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ImageInputError, match="no such file"):
        vlm.load_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageInputError, match="empty"):
        vlm.load_image(tmp_path / "empty.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageInputError, match="not a readable image"):
        vlm.load_image(tmp_path / "notes.txt")
    with pytest.raises(ImageInputError, match="not a readable image"):
        vlm.load_image(_png((64, 64))[:60])  # truncated file


def test_huge_image_is_downscaled_with_a_note_not_a_crash():
    loaded = vlm.load_image(_png((6000, 1500)), max_side=2048)
    assert loaded.size == (2048, 512) and "downscaled from 6000×1500 to 2048×512" in loaded.note
    assert vlm.load_image(_png((300, 200))).note == ""
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 6000), "grey").save(buffer, format="JPEG")  # decoded at reduced scale, then resized
    photo = vlm.load_image(buffer.getvalue(), max_side=1280)
    assert photo.size == (1280, 960) and "from 8000×6000" in photo.note


def test_decompression_bomb_is_refused_not_decoded(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageInputError, match="decompression bomb.*MAX_IMAGE_PIXELS"):
        vlm.load_image(_png((100, 100)))


def test_visual_tokens_match_transformers_image_processor():
    from transformers import Qwen2VLImageProcessorPil

    # the limits in Qwen2.5-VL-7B-Instruct's preprocessor_config.json (the bare class defaults to 1,280 tokens at most)
    processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 3136, "longest_edge": 12845056})
    for size in [(900, 500), (916, 614), (50, 40), (4032, 3024), (1920, 1080)]:
        grid = processor(images=[Image.new("RGB", size)], return_tensors="pt")["image_grid_thw"][0]
        assert vlm.qwen_visual_tokens(*size).tokens == int(grid.prod()) // 4, size


def test_request_carries_the_image_as_a_data_url_and_the_schema(tiny):
    endpoint, state = tiny
    page = vlm.load_image(documents.make_invoices(1, seed=0)[0].image)
    reply = vlm.ask(endpoint, [page], "what is the total", schema=documents.INVOICE_SCHEMA, max_tokens=8)
    sent = state["requests"][-1]
    text, image = sent["messages"][0]["content"]
    assert text == {"type": "text", "text": "what is the total"} and image["type"] == "image_url"
    header, payload = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    assert Image.open(io.BytesIO(base64.b64decode(payload))).size == page.size
    assert sent["response_format"]["json_schema"]["schema"] == documents.INVOICE_SCHEMA
    assert sent["model"] == tiny_qwen_vl.MODEL_ID and sent["max_tokens"] == 8
    # the server's usage counts the image tokens the formula predicts, plus the same text tokens as without an image
    text_only = llm.chat(endpoint, [{"role": "user", "content": "what is the total"}], max_tokens=2, stream=False)
    assert reply.prompt_tokens - text_only.prompt_tokens == vlm.qwen_visual_tokens(*page.size).tokens + 2  # vision start/end


def test_preview_shows_the_request_without_the_base64_bulk():
    body = vlm.request_body([vlm.load_image(_png((400, 300)))], "describe", max_tokens=5)
    preview = vlm.request_preview(body)
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    assert f"({len(url):,} characters)" in preview and url not in preview
    assert json.loads(preview)["max_tokens"] == 5


def test_slow_server_raises_a_timeout_that_says_what_to_do(tiny):
    endpoint, state = tiny
    state["delay_s"] = 2.0
    try:
        with pytest.raises(RequestTimeoutError, match="did not answer within 0.5 s.*smaller images"):
            vlm.ask(endpoint, [vlm.load_image(_png((56, 56)))], "what", timeout=0.5)
    finally:
        state["delay_s"] = 0.0


def test_vlm_extraction_and_throughput_use_the_same_path(tiny):
    endpoint, state = tiny
    docs = documents.make_invoices(2, seed=1)
    done = documents.extract_with_vlm(endpoint, docs, max_side=448)
    predictions, seconds, replies = done.predictions, done.seconds, done.replies
    assert len(predictions) == 2 and all(p is None for p in predictions)  # noise is never schema-valid JSON
    assert all(r.prompt_tokens > vlm.qwen_visual_tokens(448, 300).tokens for r in replies)
    table = documents.score(predictions, docs, seconds).table
    assert not table["valid"].any()
    state["requests"].clear()
    sweep = vlm.throughput(endpoint, [_photo()], levels=[1, 2], sides=[224, 448], requests_per_level=2, max_tokens=4)
    assert list(sweep["side_px"]) == [224, 224, 448, 448] and (sweep["images_per_s"] > 0).all()
    assert (sweep["prompt_tokens"] - sweep["predicted_visual_tokens"]).max() - (sweep["prompt_tokens"] - sweep["predicted_visual_tokens"]).min() <= 2
    # issue 44: at least four requests per stream, each a different image, after a warm-up; TTFT streamed
    assert list(sweep["requests"]) == [4, 8, 4, 8] and (sweep["distinct_images"] == sweep["requests"]).all()
    assert (sweep["ttft_p50_s"] > 0).all() and (sweep["short_outputs"] == 0).all()
    sent = [r for r in state["requests"] if any(isinstance(m["content"], list) and any(p["type"] == "image_url" for p in m["content"])
                                                 for m in r["messages"])]
    assert len(sent) == 4 + 8 + 4 + 8 + (1 + 2) * 2  # the timed requests plus one warm-up per stream at each point
    assert all(r["stream"] and r["ignore_eos"] for r in sent)
    # review of issue 44, finding 8: llama.cpp routes a prompt to the slot sharing its longest prefix and reuses it
    # unless told not to; every throughput request asks for a full prefill, as the text sweep does
    assert all(r.get("cache_prompt") is False for r in sent)
    problems = vlm.throughput_problems(sweep)  # this fixture reports no cache figures: every point says so
    assert len(problems) == 4 and all("no cache evidence" in p for p in problems)
    urls = [p["image_url"]["url"] for r in sent for m in r["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p["type"] == "image_url"]
    assert len(set(urls)) == len(urls)  # no image sent twice: nothing a server could answer from its cache


def test_throughput_problems_flag_a_disturbed_level_and_ignored_ignore_eos():
    import pandas as pd

    table = pd.DataFrame({"side_px": [448, 448, 896, 896], "concurrency": [1, 4, 1, 4],
                          "completion_tok_s": [10.0, 30.0, 8.0, 40.0], "ttft_audited": [8, 16, 8, 0],
                          "ttft_unaudited": [0, 0, 0, 0], "short_outputs": [0, 0, 2, 0]})
    problems = vlm.throughput_problems(table)
    assert any("896 px each of 4 streams generated 10.0 tok/s, faster than 8.0" in p for p in problems)
    assert any("896 px, 1 in flight: 2 outputs shorter" in p for p in problems)
    assert any("896 px, 4 in flight: every TTFT sample was a cache hit" in p for p in problems) and len(problems) == 3
    assert vlm.throughput_problems(table.iloc[:2]) == []


def test_text_only_llama_server_says_it_takes_no_images():
    with llm.stand_in(ctx_size=2048, parallel=1) as server:
        endpoint = llm.connect(server.base_url)
        with pytest.raises(VisionUnsupportedError, match="does not accept images.*mmproj"):
            vlm.ask(endpoint, [vlm.load_image(_png((64, 64)))], "what is this?")


def test_sample_photos_are_real_and_offline():
    photos = vlm.sample_photos()
    assert set(photos) == {"astronaut", "coffee", "chelsea", "rocket", "grace_hopper"}
    assert photos["astronaut"].size == (512, 512) and photos["grace_hopper"].image.mode == "RGB"


@pytest.mark.slow
def test_playbook_vlm_branch_runs_end_to_end_against_an_http_vlm(tiny, tmp_path):
    # the Spark path's cells (captions, VLM extraction, throughput) executed for real; the fixture's
    # answers are noise, so this checks that the cells run and record, never what they record
    from sparkbooks import runner

    endpoint, _ = tiny
    params = {"base_url": endpoint.base_url, "n_documents": 2, "sides": [112, 224], "concurrency": [1, 2], "requests_per_level": 2}
    result = runner.run("vlm", profile="cpu", params=params, out=tmp_path, progress=False)
    values = {r["name"]: r["value"] for r in json.loads((tmp_path / "vlm" / "results.json").read_text())["results"]}
    assert values["vlm_schema_valid_rate"] == 0.0 and values["vlm_seconds_per_doc"] > 0
    assert values["images_per_s_max"] > 0 and values["schema_valid_rate"] == 1.0
    assert values["vlm_speed_consistent"] is False  # the sweep's check ran: the fixture reports no cache figures
    notebook = nbformat.read(tmp_path / "vlm" / "vlm.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert result.status == "ok" and "No VLM endpoint" not in printed and "prompt tokens" in printed
