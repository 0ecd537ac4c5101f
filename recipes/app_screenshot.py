"""Open a run's app in a real headless chromium, type a message, read the label, save a screenshot.

    python recipes/app_screenshot.py --run outputs/<run> --output docs/app.png ["a message"]

Needs Debian's chromium and its driver (apt-get install chromium chromium-driver) and selenium (dev
extra). Prints the label the page shows. tests/test_app.py uses classify_in_browser on a tiny run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from hf_spam.cli import ArgumentParser, run_main

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DEFAULT_MESSAGE = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward!"
)


def classify_in_browser(url: str, message: str, screenshot: Path, timeout: float = 60) -> str:
    """Type ``message`` into the app at ``url``, press Classify, wait for the label; save a PNG."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, timeout)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#message textarea"))
        box.send_keys(message)
        driver.find_element(By.CSS_SELECTOR, "#classify").click()
        label = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#decision textarea, #decision input").get_attribute(
                "value"
            )
        )
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#details").text.strip())
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        return label
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description="Screenshot of a run's app in headless chromium.")
    parser.add_argument("--run", required=True, help="a run folder, or a hub repo id")
    parser.add_argument("--output", default="docs/app.png", help="where the PNG goes")
    parser.add_argument("message", nargs="?", default=DEFAULT_MESSAGE)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install chromium chromium-driver")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from hf_spam.serving.app import build_app

    demo = build_app(args.run)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        print(classify_in_browser(demo.local_url, args.message, Path(args.output)))
    finally:
        demo.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_main(main))
