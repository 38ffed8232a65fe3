"""`hf-linear demo`: the app's handlers, its CLI, and the real app driven in a headless browser.

The browser test starts `hf-linear demo` on a LinearLM trained in the test (~1 s: 16 examples of
4x4 `lsb` multiplication, 4321 x 8765 among them), opens the page in Debian's chromium through
Playwright, computes 4321 x 8765, sees the streamed CoT and the checked answer, picks a token and
reads its attribution table, and keeps a screenshot (HF_LINEAR_DEMO_SCREENSHOT=PATH also writes it
there, palette-compressed: docs/demo.png is made so). A program checkpoint (the certificate of
4-bit binary multiplication, exact without training) gets the same tab: its handlers directly,
then 13 x 11 in the browser.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from hf_linear import LinearLMConfig, LinearLMForCausalLM
from hf_linear.data.arithmetic import ArithmeticSpec, build_arithmetic_tokenizer
from hf_linear.data.arithmetic.formats import EOS
from hf_linear.data.programs import compile_program
from hf_linear.data.programs.certificate import certificate_model
from hf_linear.data.programs.dataset import build_program_tokenizer, program_prompt
from hf_linear.demo.generation import check_cot

SPEC = ArithmeticSpec.create("multiplication", 4, "lsb")
DATASET = {"arithmetic": {"task": "multiplication", "digits": [4, 4], "cot": "lsb", "train_size": 16}}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def train_small_linear_lm(path: Path, steps: int = 60) -> Path:
    """A LinearLM that has learnt 16 examples by heart (4321 x 8765 first), saved as a run directory."""
    tokenizer = build_arithmetic_tokenizer()
    rng = random.Random(0)
    pairs = [(4321, 8765)] + [(rng.randrange(1000, 10000), rng.randrange(1000, 10000)) for _ in range(15)]
    texts = [" ".join(SPEC.format.tokens(pair) + [EOS]) for pair in pairs]
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts])
    labels = ids.clone()
    labels[:, : SPEC.prompt_length] = -100  # as the trainer: no loss on the prompt
    torch.manual_seed(0)
    config = LinearLMConfig(
        context_length=ids.shape[1],
        hidden_size=16,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LinearLMForCausalLM(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(steps):
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "training_config.yaml").write_text(yaml.safe_dump({"dataset": DATASET}))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return train_small_linear_lm(tmp_path_factory.mktemp("mul4x4-lsb-linear"))


PROGRAM = compile_program("multiplication", 16)  # a, b in [0, 16): 4 bits each, 4 rows joined by "+"


@pytest.fixture(scope="module")
def program_checkpoint(tmp_path_factory) -> Path:
    """The certificate of 4-bit binary multiplication (always right, no training), saved as a run
    trained on the program's stream."""
    path = tmp_path_factory.mktemp("multiplication-16-certificate")
    certificate_model(PROGRAM).save_pretrained(path)
    build_program_tokenizer(PROGRAM).save_pretrained(path)
    (path / "training_config.yaml").write_text(
        yaml.safe_dump({"dataset": {"program_stream": {"program": "multiplication", "size": 16}}})
    )
    return path


# ----------------------------------------------------------------------------- without a browser


def test_cot_check_names_the_first_departing_step():
    reference = SPEC.format.tokens((4321, 8765)) + [EOS]
    generated = reference[SPEC.prompt_length :]
    right = check_cot(SPEC, (4321, 8765), generated)
    assert right.correct and right.departure is None and right.statement == "4321 × 8765 = 37873565"
    wrong = list(generated)
    second_row = wrong.index("+") + 5  # a digit of the second partial product
    wrong[second_row] = "9" if wrong[second_row] != "9" else "8"
    wrong[-2] = "0" if wrong[-2] != "0" else "1"  # and a wrong last answer digit
    check = check_cot(SPEC, (4321, 8765), wrong)
    assert not check.correct and check.departure == second_row
    assert check.departure_step == "long multiplication, step 2" and check.expected_token == generated[second_row]
    stopped = check_cot(SPEC, (4321, 8765), generated[:10])
    assert not stopped.correct and stopped.departure == 10 and stopped.answer == ""


def test_program_task_prompt_reference_and_check(program_checkpoint):
    from hf_linear.demo.models import load_demo_model
    from hf_linear.demo.tasks import ProgramTask

    task = load_demo_model(str(program_checkpoint)).task
    assert isinstance(task, ProgramTask) and task.program.name == "multiplication-16"
    assert [field.label for field in task.fields] == ["a (0 – 15)", "b (0 – 15)"]
    assert task.prompt([" 13", "11 "]) == program_prompt("multiplication", 16, 13, 11)
    trace = PROGRAM.tokens(13, 11)
    assert task.reference(["13", "11"]) == trace[PROGRAM.prompt_length :] + [EOS]

    right = task.check(["13", "11"], task.reference(["13", "11"]))
    assert right.correct and right.departure is None and right.true_result == 143
    assert right.statement == "multiplication-16 of a=13, b=11 = 143 (answer bits least significant first)"
    assert right.answer == " ".join(trace[PROGRAM.answer_start :])

    wrong = task.reference(["13", "11"])
    second_row = wrong.index("+") + 4  # a token of the second row of the CoT
    wrong[second_row] = "1" if wrong[second_row] == "0" else "0"
    wrong[-2] = "1" if wrong[-2] == "0" else "0"  # and the answer's most significant bit: 143 + 128 or 143 - 128
    check = task.check(["13", "11"], wrong)
    assert not check.correct and check.departure == second_row and check.departure_step == "chain of thought, step 2"
    assert check.expected_token == trace[PROGRAM.prompt_length + second_row]
    assert "the model's bits read 15" in check.statement
    stopped = task.check(["13", "11"], wrong[:5])
    assert not stopped.correct and stopped.departure == 5 and stopped.answer == ""

    for values, expected in [
        (["16", "3"], "a=16 must be an integer in [0, 16)"),
        (["x", "3"], "a='x' must be"),
        (["", "3"], "a='' must be"),
        (["-1", "3"], "a='-1' must be"),
        (["3", "1.5"], "b='1.5' must be"),
    ]:
        with pytest.raises(ValueError, match=re.escape(expected)):
            task.prompt(values)


@pytest.mark.slow
def test_program_handlers(program_checkpoint, checkpoint):
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    from hf_linear.demo.app import DemoApp, input_boxes
    from hf_linear.demo.models import load_demo_model

    program_model, arithmetic_model = load_demo_model(str(program_checkpoint)), load_demo_model(str(checkpoint))
    app, name = DemoApp([program_model, arithmetic_model]), str(program_checkpoint)
    assert "program `multiplication-16`" in program_model.description
    assert [(box["label"], box["visible"]) for box in input_boxes(program_model)] == [
        ("a (0 – 15)", True),
        ("b (0 – 15)", True),
        ("", False),
        ("", False),
    ]
    assert [box["label"] for box in input_boxes(arithmetic_model)][:2] == ["a (4 digits)", "b (4 digits)"]
    updates = app.box_updates(str(checkpoint))
    assert updates[0]["label"] == "a (4 digits)" and updates[2]["visible"] is False
    (bad,) = list(app.run_arithmetic(name, "16", "3", "", ""))
    assert "hfl-message" in bad[1] and "a=16 must be an integer in [0, 16)" in bad[1]
    *streamed, last = app.run_arithmetic(name, "13", "11", "", "")
    assert streamed and "✓ correct" in last[1] and "= 143" in last[1]
    assert last[0].count('class="hfl-token"') == len(PROGRAM.tokens(13, 11)) + 1 - PROGRAM.prompt_length
    assert "follows the reference" in last[1]
    attribution, image = app.explain(last[3], "0")
    assert "exact" in attribution and image.size[0] > 100


@pytest.mark.slow
def test_handlers_turn_bad_input_into_a_message(checkpoint):
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    from hf_linear.demo.app import DemoApp
    from hf_linear.demo.models import load_demo_model

    app = DemoApp([load_demo_model(str(checkpoint))])
    name = str(checkpoint)
    for a, b, expected in [
        ("12a4", "8765", "digits only"),
        ("123", "8765", "4-digit"),
        ("", "8765", "4-digit"),
        ("4321", "99999", "4-digit"),
        ("0321", "8765", "leading zeros"),
    ]:
        outputs = list(app.run_arithmetic(name, a, b))
        assert len(outputs) == 1 and "hfl-message" in outputs[0][1] and expected in outputs[0][1], (a, b, outputs)
    (empty,) = list(app.run_text(name, "   ", 0.5, 40, 8))
    assert "prompt is empty" in empty[1]
    *_, text = app.run_text(name, "[BOS] 4 3 2 1 x 8 7 6 5 =", 0.0, 0, 5)  # any checkpoint takes free text
    assert text[1] == "" and len(text[3].tokens) == 5 and text[0].count('class="hfl-token"') == 5
    *_, last = app.run_arithmetic(name, "4321", "8765")
    assert "✓ correct" in last[1] and last[3] is not None
    attribution, image = app.explain(last[3], "3")
    assert "exact" in attribution and image.size[0] > 100


@pytest.mark.slow
def test_cli_refuses_what_is_not_an_hf_linear_checkpoint(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    from hf_linear.demo.cli import main, parse_arguments

    assert parse_arguments(["x"])[1].host == "127.0.0.1"  # loopback unless told otherwise
    bad_programs = [
        ("{multiplication", "--program is not valid JSON"),
        ('{"program": "multiplication"}', "needs the keys program and size"),
        ('{"program": "nope", "size": 16}', "program='nope' is not one of"),
    ]
    for program, expected in bad_programs:  # refused before any checkpoint is read
        with pytest.raises(SystemExit) as exit_:
            main([str(tmp_path / "missing"), "--program", program])
        assert exit_.value.code == 2 and expected in capsys.readouterr().err
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=20, n_positions=8)).save_pretrained(
        tmp_path / "gpt2"
    )
    for checkpoint, expected in [(tmp_path / "gpt2", "not an hf-linear"), (tmp_path / "missing", "cannot be loaded")]:
        with pytest.raises(SystemExit) as exit_:
            main([str(checkpoint)])
        assert exit_.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
        assert error.startswith("hf-linear demo: error:") and expected in error


# ----------------------------------------------------------------------------- in a real browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compute(page, a: str, b: str) -> None:
    """Type the two operands into the Arithmetic tab and press Compute."""
    page.locator("#hfl-a textarea, #hfl-a input").first.fill(a)
    page.locator("#hfl-b textarea, #hfl-b input").first.fill(b)
    page.locator("#hfl-compute").click()


def start_demo(checkpoint: Path, port: int) -> subprocess.Popen:
    """`hf-linear demo CHECKPOINT --port P` in a subprocess; returns once it serves the page."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_linear.cli", "demo", str(checkpoint), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline, output = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if "Running on local URL" in line:
            return process
    process.kill()
    raise AssertionError("the demo did not start:\n" + "".join(output))


def save_readme_screenshot(source: Path, target: Path) -> None:
    from PIL import Image

    image = Image.open(source).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    image.quantize(colors=48, dither=Image.Dither.NONE).save(target, optimize=True)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium): the browser test needs one")
def test_the_app_in_a_headless_browser(checkpoint, tmp_path):
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = free_port()
    process = start_demo(checkpoint, port)
    try:
        # loopback only: the machine's other address does not answer
        address = socket.gethostbyname(socket.gethostname())
        if not address.startswith("127."):
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            expect = playwright_api.expect

            # bad input: a message on the page
            compute(page, "12x4", "8765")
            expect(page.locator("#hfl-verdict .hfl-message")).to_contain_text("digits only", timeout=20_000)

            # 4321 x 8765: the streamed CoT, the checked answer
            compute(page, "4321", "8765")
            expect(page.locator("#hfl-verdict")).to_contain_text("✓ correct", timeout=30_000)
            expect(page.locator("#hfl-verdict")).to_contain_text("4321 × 8765 = 37873565")
            cot = page.locator("#hfl-cot .hfl-token")
            assert cot.count() == SPEC.length + 1 - SPEC.prompt_length  # the CoT, the answer, [EOS]
            assert cot.nth(0).inner_text().strip() == "1x5"
            assert all(0.0 <= float(p) <= 1.0 for p in cot.evaluate_all("spans => spans.map(s => s.dataset.p)"))

            # why this token: choose the first token of the second partial product
            page.locator("#hfl-token input").click()
            page.get_by_role("option", name=re.compile(r"^#14 ")).click()
            table = page.locator("#hfl-attribution table.hfl-attribution")
            expect(table).to_be_visible(timeout=20_000)
            expect(page.locator("#hfl-attribution")).to_contain_text("exact")
            expect(page.locator("#hfl-attribution")).to_contain_text("output position 24")
            rows = table.locator("tbody tr")
            assert rows.count() == 25 + 3  # inputs 0..24, the bias, the sum, the model's logit
            expect(page.locator("#hfl-heatmap img")).to_be_visible(timeout=20_000)

            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert shot.stat().st_size > 10_000
        if os.environ.get("HF_LINEAR_DEMO_SCREENSHOT"):
            save_readme_screenshot(shot, Path(os.environ["HF_LINEAR_DEMO_SCREENSHOT"]))
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium): the browser test needs one")
def test_a_program_checkpoint_in_a_headless_browser(program_checkpoint):
    """The Arithmetic tab of a program checkpoint: its own boxes, its message, its checked trace."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = free_port()
    process = start_demo(program_checkpoint, port)
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect = playwright_api.expect
            expect(page.locator("#hfl-a")).to_contain_text("a (0 – 15)", timeout=20_000)
            expect(page.locator("#hfl-c")).to_be_hidden()
            compute(page, "16", "11")
            expect(page.locator("#hfl-verdict .hfl-message")).to_contain_text("a=16 must be an integer", timeout=20_000)
            compute(page, "13", "11")
            expect(page.locator("#hfl-verdict")).to_contain_text("✓ correct", timeout=30_000)
            expect(page.locator("#hfl-verdict")).to_contain_text("multiplication-16 of a=13, b=11 = 143")
            assert page.locator("#hfl-cot .hfl-token").count() == PROGRAM.length + 1 - PROGRAM.prompt_length
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)


# ----------------------------------------------------------------------------- the Space


@pytest.mark.slow
def test_space_round_trip_through_the_local_hub(checkpoint, hub_server, tmp_path, capsys):
    """push --space, snapshot_download(repo_type="space"), then the Space's app.py serves the page."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    import urllib.request

    from huggingface_hub import snapshot_download

    from hf_linear.hub.push import main as push_main

    model_repo, space_repo = hub_server.repo_id("mul4x4-lsb-linear"), hub_server.repo_id("mul4x4-demo")
    assert push_main([str(checkpoint), model_repo, "--space", space_repo]) == 0
    assert "/spaces/" in capsys.readouterr().out.strip().splitlines()[-1]
    space = Path(snapshot_download(space_repo, repo_type="space", local_dir=tmp_path / "space"))
    readme = (space / "README.md").read_text()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme and model_repo in readme
    assert "gradio" in (space / "requirements.txt").read_text() and (space / "hf_linear" / "demo" / "app.py").is_file()
    assert repr([model_repo]) in (space / "app.py").read_text()

    port = free_port()
    env = {
        **os.environ,
        **hub_server.env,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("GRADIO_SERVER_NAME", None)  # as locally: loopback
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and not any("Running on local URL" in line for line in output):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            output.append(line)
        log = "".join(output)
        assert "Running on local URL:  http://127.0.0.1" in log, log
        assert f"hf_linear from {space / 'hf_linear'}" in log  # the Space runs its own copy of the package
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
            assert response.status == 200 and "hf-linear demo" in response.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=20)
