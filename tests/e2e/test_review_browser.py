"""The review page in a real browser: Debian's headless Chromium driven by selenium through chromedriver.

An owner with 2FA publishes 1.0.0 and stages 1.1.0 with the stock npm CLI; the new version adds a
dependency and a postinstall script. The browser signs in, opens the inbox and the stage, sees both
flagged, approves with an OTP, and `npm view` shows the version. The stage page's screenshot is saved
under the test's tmp dir (its path is printed); docs/review-page.png is one of these.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.packages import make_package, unique_name

CHROMIUM = os.environ.get("STAGEGATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STAGEGATE_CHROMEDRIVER", "/usr/bin/chromedriver")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: ./scripts/bootstrap --with-browser installs "
                    "Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1800", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp_path / "driver.log")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _stage_with_npm(owner, directory: Path) -> str:
    manifest = json.loads((directory / "package.json").read_text())
    manifest.update(version="1.1.0", dependencies={**manifest.get("dependencies", {}), "event-stream": "3.3.6"},
                    scripts={**manifest.get("scripts", {}), "postinstall": "node collect.js"})
    (directory / "package.json").write_text(json.dumps(manifest, indent=2))
    (directory / "collect.js").write_text("require('os').hostname()\n")
    (directory / "index.js").write_text("module.exports = 'changed'\n")
    result = owner.npm("stage", "publish", cwd=directory)
    assert result.returncode == 0, result
    return re.search(rf"\(staged with id ({UUID})\)", result.stdout).group(1)


def test_review_in_a_browser_then_npm_view_shows_the_version(accounts, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(element_id: str):  # a click returns before the next page has loaded
        return WebDriverWait(browser, 30).until(shown.presence_of_element_located((By.ID, element_id)))

    owner = accounts.create("browser")
    name = unique_name("reviewed")
    directory = make_package(tmp_path, name, dependencies={"left-pad": "^1.3.0"}, scripts={"test": "node test.js"})
    assert owner.npm("publish", cwd=directory).returncode == 0
    owner.enable_2fa()
    stage_id = _stage_with_npm(owner, directory)

    browser.get(owner.registry + "-/review/")
    wait_for("signin")
    assert browser.current_url.endswith("/-/review/signin")
    browser.find_element(By.NAME, "username").send_keys(owner.name)
    browser.find_element(By.NAME, "password").send_keys(owner.password)
    browser.find_element(By.NAME, "otp").send_keys(owner.otp())
    browser.find_element(By.ID, "signin").click()

    wait_for("signout")
    assert browser.current_url.endswith("/-/review/"), browser.page_source
    browser.find_element(By.CSS_SELECTOR, f'a.stage-link[href$="{stage_id}"]').click()

    wait_for("decide")
    assert stage_id in browser.current_url
    warnings = browser.find_element(By.ID, "warnings").text
    assert "install-script" in warnings and "postinstall" in warnings, warnings
    assert "new-dependency" in warnings and "event-stream" in warnings, warnings
    scripts = browser.find_element(By.ID, "install-scripts").text
    assert "postinstall" in scripts and "NEW" in scripts.upper()
    assert "INSTALL-TIME" in browser.find_element(By.ID, "scripts").text.upper()
    assert "event-stream" in browser.find_element(By.ID, "deps-dependencies").text
    assert "index.js" in browser.find_element(By.ID, "files").text
    shot = tmp_path / "review-stage-page.png"
    assert browser.save_screenshot(str(shot))
    print(f"\nscreenshot of the stage page: {shot}")

    browser.find_element(By.ID, "approve-otp").send_keys(owner.otp())
    browser.find_element(By.ID, "approve").click()
    result = wait_for("result").text
    assert "published" in result, browser.page_source

    view = accounts.anonymous()("view", f"{name}@1.1.0", "version")
    assert view.returncode == 0 and view.stdout.strip() == "1.1.0", view
