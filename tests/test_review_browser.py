"""End to end in real headless Chromium: open the review page, correct a cell by keyboard,
re-run the pipeline on that file, find the correction in the output JSON; correct a group of
cells that read the same across two files with one decision, split off a cell, and find the
correction in every record of the group after a re-run.

Uses Debian's chromium + chromedriver (`.ci/run` installs them); a screenshot of the page
is written to tests/artifacts/review-page.png (and review-group.png) for a person to look at.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_fixtures import REPO, SAMPLE, fresh_output, jsonl_cell, output_cell, read_queue, run_pipeline

SECOND = REPO / "data" / "raw" / "d028.pdf"  # another office's scan: shares readings with SAMPLE

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "tests" / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def out(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_output(tmp_path_factory.getbasetemp(), tmp_path / "out")


@pytest.fixture
def server(out: Path) -> Iterator[str]:
    yield from _serve(out)


def _serve(out: Path) -> Iterator[str]:
    """The review app under uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from pipeline.review.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(out, reviewer="e2e"), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("review app did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1050", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    # the system driver, given by path: Selenium Manager never tries to download one
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=str(CHROMEDRIVER)))
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def _wait(pred: Any, timeout: float = 10.0) -> Any:
    """Poll `pred` until true; the page may be mid-navigation, so lookups may fail on the way."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except WebDriverException:  # stale element / no such element while the next page loads
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting in the browser")
        time.sleep(0.05)


def _keys(drv: Any, *keys: str) -> None:
    """Type into whatever has focus, as a person does (element.send_keys would move the caret)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv).send_keys(*keys).perform()


def _chord(drv: Any, modifier: str, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv).key_down(modifier).send_keys(key).key_up(modifier).perform()


def _shown_id(drv: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(drv.find_element(By.ID, "item").get_attribute("data-id"))


def _ready(drv: Any, item_id: str) -> bool:
    """The page of `item_id` is up and its script ran (it focuses the field, then listens)."""
    return _shown_id(drv) == item_id and drv.switch_to.active_element.get_attribute("id") == "value"


def _decisions(out: Path) -> dict[str, Any]:
    db = out / "review" / "decisions.sqlite"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT key, row, value, reviewer FROM decisions").fetchall()
    finally:
        con.close()
    return {(k, None if r < 0 else r): (json.loads(v), who) for k, r, v, who in rows}


def test_correct_a_cell_by_keyboard_and_it_survives_a_rerun(out: Path, server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    queue = sorted(read_queue(out), key=lambda e: e["confidence"])
    assert len(queue) >= 3
    browser.get(server + "/")
    # the lowest-confidence item first, the value field focused with its text selected
    assert _shown_id(browser) == queue[0]["id"]
    field = browser.switch_to.active_element
    assert field.get_attribute("id") == "value"
    groups = len({e["group"] for e in queue})  # the count is of decisions to make: groups
    assert browser.find_element(By.ID, "left-count").text.startswith(f"{groups} left")
    crop = browser.find_element(By.ID, "crop")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", crop)

    # arrows move through the queue, a group at a time (its first, least confident, entry)
    heads: list[dict[str, Any]] = []
    for e in queue:
        if all(h["group"] != e["group"] for h in heads):
            heads.append(e)
    assert heads[0]["id"] == queue[0]["id"]
    _keys(browser, Keys.ARROW_DOWN)
    _wait(lambda: _ready(browser, heads[1]["id"]))
    _keys(browser, Keys.ARROW_UP)
    _wait(lambda: _ready(browser, queue[0]["id"]))

    # go to a numeric cell and correct it by typing: the selected text is replaced
    target = next(e for e in queue if not e["alternatives"] and e["group_size"] == 1
                  and (e["key"] in ("level1_points", "weight", "score")
                       or (isinstance(e["value"], int) and not isinstance(e["value"], bool))))
    browser.get(server + "/?item=" + target["id"])
    field = browser.switch_to.active_element
    assert field.get_attribute("id") == "value"
    assert browser.execute_script("return window.getSelection().toString()") == str(target["value"])
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "review-page.png"
    browser.save_screenshot(str(shot))  # for a person to look at (README: docs/review-page.png)
    assert shot.stat().st_size > 10_000
    new_value = 35 if target["value"] != 35 else 34
    _keys(browser, str(new_value))
    assert field.get_attribute("value") == str(new_value)
    _keys(browser, Keys.ENTER)
    # saved: the page moves on to the next open item, one fewer left
    _wait(lambda: _shown_id(browser) != target["id"] and browser.switch_to.active_element.get_attribute("id") == "value")
    assert browser.find_element(By.ID, "left-count").text.startswith(f"{groups - 1} left")
    key = (target["key"], target["row"])
    assert _decisions(out)[key] == (new_value, "e2e")
    cell = output_cell(out, target)
    assert (cell["value"], cell["confidence"], cell["reviewed"]) == (new_value, 1.0, True)

    # Ctrl+Z takes it back (the output returns to the pipeline's cell), Enter on it accepts as read,
    # and a second correction by keyboard sticks
    _chord(browser, Keys.CONTROL, "z")
    _wait(lambda: _ready(browser, target["id"]) and key not in _decisions(out))
    assert output_cell(out, target)["value"] == target["value"]
    assert not output_cell(out, target).get("reviewed")
    _keys(browser, str(new_value), Keys.ENTER)
    _wait(lambda: _decisions(out).get(key) == (new_value, "e2e"))
    _wait(lambda: _shown_id(browser) != target["id"])  # let the page move on before we steer it

    # a proposal is picked by its key (Alt+1) where the queue offers one
    with_prop = next((e for e in queue if e["alternatives"] and e["id"] != target["id"]), None)
    if with_prop is not None:
        browser.get(server + "/?item=" + with_prop["id"])
        _wait(lambda: _ready(browser, with_prop["id"]))
        browser.save_screenshot(str(shot))  # the richer picture: proposals with their keys
        pk = (with_prop["key"], with_prop["row"])
        proposed = (with_prop["alternatives"][0]["value"], "e2e")
        _chord(browser, Keys.ALT, "1")
        _wait(lambda: _decisions(out).get(pk) == proposed and _shown_id(browser) != with_prop["id"])
        _wait(lambda: browser.switch_to.active_element.get_attribute("id") == "value")
        # Tab puts the proposal into the field, Enter saves it (after undoing the Alt+1 pick)
        _chord(browser, Keys.CONTROL, "z")
        _wait(lambda: pk not in _decisions(out) and _ready(browser, with_prop["id"]))
        _keys(browser, Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("value") == str(proposed[0])
        _keys(browser, Keys.ENTER)
        _wait(lambda: _decisions(out).get(pk) == proposed and _shown_id(browser) != with_prop["id"])

    # the pipeline runs again on the same file into the same folder: the correction is still there
    run_pipeline(SAMPLE, out)
    for c in (output_cell(out, target), jsonl_cell(out, target)):
        assert (c["value"], c["confidence"], c["reviewed"]) == (new_value, 1.0, True)
        assert c.get("needs_review") is False
    # and the page does not offer it as open: a newer queue either drops it or shows it decided
    browser.get(server + "/")
    assert _shown_id(browser) != target["id"]
    listed = {e["id"]: e for e in read_queue(out)}
    if target["id"] in listed:
        browser.get(server + "/?item=" + target["id"])
        assert browser.switch_to.active_element.get_attribute("value") == str(new_value)
        assert "decided by e2e" in browser.find_element(By.ID, "state").text



@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two scans in one input folder, run into one output folder: groups span both."""
    import shutil

    inp = tmp_path / "in"
    inp.mkdir()
    for f in (SAMPLE, SECOND):
        shutil.copyfile(f, inp / f.name)
    out = tmp_path / "out2"
    run_pipeline(inp, out)
    return inp, out


def _row_entry(e: dict[str, Any], r: int | None) -> dict[str, Any]:
    return {**e, "row": r}


def test_correct_a_group_with_one_decision_split_one_off_and_it_survives_a_rerun(
        two_files: tuple[Path, Path], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    inp, out = two_files
    queue = read_queue(out)
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in queue:
        groups.setdefault(e["group"], []).append(e)
    # a group over both files, of numbers (a correction is easy to type and to check)
    members = max((m for m in groups.values() if len({e["file"] for e in m}) == 2
                   and all(isinstance(e["value"], int) and not isinstance(e["value"], bool) for e in m)), key=len)
    assert len(members) >= 3
    cells = [(e, r) for e in members for r in e["rows"]]
    server = _serve(out)
    url = next(server)
    try:
        browser.get(url + "/?item=" + members[0]["id"])
        _wait(lambda: _ready(browser, members[0]["id"]))
        group = browser.find_element(By.ID, "group")
        # the group: how many cells, in which files, a strip of their crops
        assert group.find_element(By.ID, "group-cells").text == str(len(cells))
        assert {SAMPLE.name, SECOND.name} <= {el.text.split(" ")[0] for el in group.find_elements(By.CLASS_NAME, "gfile")}
        strip = group.find_elements(By.CSS_SELECTOR, ".member img")
        assert len(strip) == len(members)
        assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", im)
                   for im in strip)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "review-group.png"))  # README: docs/review-group.png

        # a reviewer sees one that differs and splits it off: the group shrinks by its cells
        odd = members[-1]
        group.find_element(By.CSS_SELECTOR, f'.member[data-id="{odd["id"]}"] button.split').click()
        left = [(e, r) for e, r in cells if e["id"] != odd["id"]]
        _wait(lambda: browser.find_element(By.ID, "group-cells").text == str(len(left))
              and _ready(browser, members[0]["id"]))
        # one correction, typed once, for the rest of the group
        new_value = 41 if members[0]["value"] != 41 else 42
        _keys(browser, str(new_value), Keys.ENTER)
        _wait(lambda: sum(1 for e, r in left if _decisions(out).get((e["key"], r)) == (new_value, "e2e")) == len(left)
              or None)
    finally:
        next(server, None)
    for e, r in left:
        assert output_cell(out, e, r)["value"] == new_value
    assert not output_cell(out, odd).get("reviewed")  # split off: still open

    # the pipeline runs again on both files: every record of the group has the correction
    run_pipeline(inp, out)
    for e, r in left:
        for c in (output_cell(out, e, r), jsonl_cell(out, _row_entry(e, r))):
            assert (c["value"], c["confidence"], c["reviewed"], c["needs_review"]) == (new_value, 1.0, True, False)
    assert output_cell(out, odd)["value"] == odd["value"] and not output_cell(out, odd).get("reviewed")
