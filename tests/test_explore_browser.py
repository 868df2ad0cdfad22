"""The explorer page in a real browser: headless Chromium driven by Selenium.

Loads pages of tiny runs, hovers and selects with the mouse, and checks what the page
shows against gr.inspect.record; no console errors; screenshots into pytest's tmp_path
(and into $GATEDRNN_SCREENSHOTS when set). Skips where Chromium, its driver or Selenium
is missing (``.ci/run`` installs Debian's chromium and chromium-driver).
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import gatedrnn as gr
from gatedrnn.inspect import explore as ex
from gatedrnn.train import TrainConfig, train
from gatedrnn.train.runs import load_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None

pytestmark = pytest.mark.skipif(
    webdriver is None or CHROMIUM is None or DRIVER is None,
    reason="needs headless Chromium, chromedriver and selenium "
           "(apt-get install chromium chromium-driver; pip install selenium)")

STEPS = 300


def _tolerance(meta, layer, name, unit):
    entry = next(q for q in meta["layers"][layer]["quantities"] if q["name"] == name)
    return (entry["hi"][unit] - entry["lo"][unit]) / 510 + 1e-6


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="gatedrnn-chromium-")
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                     "--window-size=1500,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def text_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "lstm"
    train(TrainConfig(task="pysource", cell="lstm", hidden=12, epochs=1, limit=3000, batch_size=4, seq_len=30),
          out, progress=False)
    return out, ex.explore(out, steps=STEPS)


def _open(browser, page):
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.resolve().as_uri())
    deadline = time.time() + 30
    while not browser.execute_script("return !!window.explorer"):
        assert time.time() < deadline, "the page did not become ready"
        time.sleep(0.05)


def _no_console_errors(browser):
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def _screenshot(browser, tmp_path, name):
    path = tmp_path / name
    browser.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("GATEDRNN_SCREENSHOTS"):
        Path(os.environ["GATEDRNN_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["GATEDRNN_SCREENSHOTS"]) / name)


def _span(browser, step):
    return browser.find_element(By.CSS_SELECTOR, f'#sequence .s[data-i="{step}"]')


def test_hovering_shows_the_recorded_values(browser, text_page, tmp_path):
    run_dir, page = text_page
    run = load_run(run_dir)
    trace = gr.inspect.record(run.model, run.task.load().test.x[:STEPS].unsqueeze(0))["recurrent.l0"]
    _open(browser, page)
    meta = browser.execute_script("return window.explorer.meta.layers.map(l => ({quantities: "
                                  "l.quantities.map(q => ({name: q.name, lo: q.lo, hi: q.hi}))}))")
    unit, step = 5, 123
    browser.execute_script(f"window.explorer.setView(0, 'c', {unit})")
    ActionChains(browser).move_to_element(_span(browser, step)).perform()
    title = browser.find_element(By.ID, "hover-title").text
    assert title.startswith(f"step {step}:") and f"unit {unit}" in title
    recorded = {"h": trace.hidden, "c": trace.cell, **trace.gates}
    for name, values in recorded.items():
        cell = browser.find_element(By.CSS_SELECTOR, f'#values tr[data-quantity="{name}"] td.value')
        expected = float(values[step, 0, unit])
        tolerance = _tolerance({"layers": meta}, 0, name, unit)
        assert abs(float(cell.get_attribute("data-value")) - expected) <= tolerance, name
        assert abs(float(cell.text) - expected) <= tolerance + 5e-4, name  # shown to 3 decimals
    # the diagram is annotated with the same gate values and the new states
    for gate, values in trace.gates.items():
        label = browser.find_element(By.CSS_SELECTOR, f'#diagram [data-gate-value="{gate}"]')
        assert abs(float(label.text) - float(values[step, 0, unit])) <= _tolerance({"layers": meta}, 0, gate, unit) + 5e-4
    for state, values in (("c", trace.cell), ("h", trace.hidden)):
        label = browser.find_element(By.CSS_SELECTOR, f'#diagram [data-state-value="{state}"]')
        assert abs(float(label.text) - float(values[step, 0, unit])) <= _tolerance({"layers": meta}, 0, state, unit) + 5e-4
    assert browser.find_elements(By.CSS_SELECTOR, '#diagram [data-gate="f"]')
    _no_console_errors(browser)
    _screenshot(browser, tmp_path, "explorer-hover.png")


def test_selecting_a_span_ranks_units_and_matches_other_spans(browser, text_page, tmp_path):
    run_dir, page = text_page
    _open(browser, page)
    start, end = 40, 52
    ActionChains(browser).click_and_hold(_span(browser, start)).move_to_element(_span(browser, end)) \
        .release().perform()
    assert browser.execute_script("return window.explorer.state.selection") == [start, end]
    # the ranking, recomputed here from the values the page holds
    values = np.array(browser.execute_script(
        f"const e = window.explorer; return Array.from({{length: 12}}, (_, u) => "
        f"Array.from({{length: {STEPS}}}, (_, t) => e.value(0, 'h', u, t)))"))  # (H, N)
    inside = values[:, start: end + 1].mean(1)
    outside = np.delete(values, np.s_[start: end + 1], axis=1).mean(1)
    expected = np.argsort(-(inside - outside), kind="stable")[:5]
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranking tr[data-unit]")
    assert [int(r.get_attribute("data-unit")) for r in rows[:5]] == expected.tolist()
    score = float(rows[0].find_elements(By.TAG_NAME, "td")[1].text)
    assert score == pytest.approx((inside - outside)[expected[0]], abs=2e-3)
    # every matched span has every checked unit above its threshold
    pattern = browser.execute_script("return window.explorer.state.pattern")
    thresholds = {u: (inside[u] + outside[u]) / 2 for u in pattern}
    for item in browser.find_elements(By.CSS_SELECTOR, "#matches li[data-start]"):
        a, b = (int(v) for v in item.text.split(":")[0].split("–"))
        assert b < start or a > end
        assert all((values[u, a: b + 1] > thresholds[u]).all() for u in pattern)
    _no_console_errors(browser)
    _screenshot(browser, tmp_path, "explorer-select.png")


def test_searching_by_a_feature_lists_the_most_correlated_units(browser, text_page):
    run_dir, page = text_page
    recording = ex.record_run(load_run(run_dir), steps=STEPS)
    _open(browser, page)
    select = browser.find_element(By.ID, "feature")
    select.find_element(By.CSS_SELECTOR, 'option[value="bracket depth"]').click()
    first = browser.find_element(By.CSS_SELECTOR, "#search tr[data-unit]")
    feature = ex.text_features(recording.text)["bracket depth"]
    best = max(((name, u, ex.correlations(values, feature)[u]) for name, values in recording.layers[0].quantities.items()
                for u in range(values.shape[1])), key=lambda e: abs(e[2]))
    assert (first.get_attribute("data-quantity"), int(first.get_attribute("data-unit"))) == best[:2]
    first.click()  # colours the page by that unit
    assert browser.execute_script("return [window.explorer.state.quantity, window.explorer.state.unit]") == \
        [best[0], best[1]]
    browser.execute_script("window.explorer.search('indentation')")  # from a script: the menu follows
    assert select.get_attribute("value") == "indentation"
    _no_console_errors(browser)


def test_a_numeric_task_draws_curves_and_the_forget_gate(browser, tmp_path):
    out = tmp_path / "gru"
    train(TrainConfig(task="mnist1d", cell="gru", hidden=8, epochs=1, limit=100), out, progress=False)
    page = ex.explore(out, steps=200)
    _open(browser, page)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sequence canvas.curve")) == 5  # 5 sequences of 40
    ActionChains(browser).move_to_element(_span(browser, 85)).perform()
    assert browser.find_element(By.ID, "hover-title").text.startswith("step 85: sequence 2, step 5")
    hint = browser.find_element(By.ID, "forget-hint").text
    assert hint.startswith("Gate z")  # the GRU's gate that keeps the state
    drawn = browser.execute_script(
        "const c = document.getElementById('forget'); const d = c.getContext('2d').getImageData(0, 0, c.width, 20).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n")
    assert drawn > 0
    _no_console_errors(browser)
    _screenshot(browser, tmp_path, "explorer-sequence.png")
