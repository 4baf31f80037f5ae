"""The README's screenshots of a running webui (AUTOMATIC1111 1.10 or Forge Neo), cropped to what they show.

    python docs/screenshots.py --url http://127.0.0.1:7860 --prefix neo [--out docs/images]

writes ``<prefix>-script.jpg`` (txt2img: *Script* = Latent Interposer, its controls),
``<prefix>-hires-upscaler.jpg`` (Hires. fix with ``Latent (NN)`` chosen from the *Upscaler* list; the list's
entries are printed) and ``<prefix>-settings.jpg`` (*Settings → Latent Interposer*). It drives headless Chromium
through Selenium, so it needs Debian's ``chromium`` and ``chromium-driver`` and ``pip install selenium`` (not a
dependency of the project: this is a maintainer's tool, run by hand against a webui started with the extension
installed; never in tests or CI). Each file is a JPEG of at most ~300 KB; it prints what each picture shows
(entries, labels), so a run can be read without looking.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from pathlib import Path

from PIL import Image

MAX_BYTES = 300_000


def _driver(width: int, height: int):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        sys.exit("docs/screenshots.py needs selenium: pip install selenium; apt-get install chromium chromium-driver")
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={width},{height}", "--disable-background-networking", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(300)
    return driver


class Page:
    """The webui page: a few queries and clicks that work on Gradio 3.41 (A1111) and 4.40 (Forge Neo)."""

    def __init__(self, driver) -> None:
        self.d = driver

    def js(self, code: str, *args):
        return self.d.execute_script(code, *args)

    def q(self, selector: str):
        return self.js("return gradioApp().querySelector(arguments[0])", selector)

    def wait_ready(self, timeout: float = 300) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.js("return typeof gradioApp === 'function' && !!gradioApp().querySelector('#script_list')"):
                time.sleep(4)
                return
            time.sleep(1)
        sys.exit("the webui page did not load")

    def tab(self, name: str) -> None:
        self.js("Array.from(gradioApp().querySelectorAll('#tabs .tab-nav button')).find(b => b.textContent.trim() == "
                "arguments[0]).click()", name)  # fmt: skip
        time.sleep(3)

    def open_dropdown(self, selector: str) -> list[str]:
        """Click a dropdown's input (a real click: a scripted one does not open it); return its entries."""
        box = self.q(f"{selector} input")
        self.js("arguments[0].scrollIntoView({block: 'center'})", box)
        box.click()
        time.sleep(1.5)
        return self.js("return Array.from(gradioApp().querySelectorAll('ul.options li'))"
                       ".map(e => e.textContent.replace('✓', '').trim())")  # fmt: skip

    def choose(self, ending: str) -> None:
        self.js("const li = Array.from(gradioApp().querySelectorAll('ul.options li'))"
                ".find(e => e.textContent.replace('✓', '').trim() == arguments[0]);"
                "if (li) li.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));", ending)  # fmt: skip
        time.sleep(2)

    def texts(self, selector: str) -> list[str]:
        return self.js("return Array.from(gradioApp().querySelectorAll(arguments[0])).filter(e => e.offsetParent !== "
                       "null).map(e => e.textContent.trim()).filter(t => t)", selector)  # fmt: skip

    def rect(self, *selectors: str, pad: int = 8) -> tuple[int, int, int, int]:
        """The union of the elements' boxes on screen (CSS pixels), padded."""
        boxes = self.js("return arguments[0].map(s => Array.from(gradioApp().querySelectorAll(s)))"
                        ".flat().filter(e => e.offsetParent !== null).map(e => { const r = e.getBoundingClientRect();"
                        " return [r.left, r.top, r.right, r.bottom]; })", list(selectors))  # fmt: skip
        if not boxes:
            raise SystemExit(f"nothing visible for {selectors}")
        left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
        return int(left) - pad, int(top) - pad, int(right) + pad, int(bottom) + pad

    def shot(self, path: Path, box: tuple[int, int, int, int], width: int = 900) -> None:
        """The visible page cropped to ``box``, at most ``width`` px wide, as a JPEG under MAX_BYTES."""
        scale = self.js("return window.devicePixelRatio") or 1
        image = Image.open(io.BytesIO(self.d.get_screenshot_as_png())).convert("RGB")
        left, top, right, bottom = (max(0, int(v * scale)) for v in box)
        image = image.crop((left, top, min(right, image.width), min(bottom, image.height)))
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        path.parent.mkdir(parents=True, exist_ok=True)
        for quality in (88, 80, 70, 60, 50):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= MAX_BYTES:
                break
        path.write_bytes(buffer.getvalue())
        print(f"wrote {path} ({image.width}x{image.height}, {path.stat().st_size // 1024} KB)")


def script_panel(page: Page, out: Path) -> None:
    entries = page.open_dropdown("#txt2img_script_container #script_list")
    print("Script dropdown:", entries)
    page.choose("Latent Interposer")
    panel = page.q("#txt2img_script_container")
    page.js("arguments[0].scrollIntoView({block: 'center'})", panel)
    time.sleep(1)
    ours = "[id^=script_latent_interposer_]"
    print("script controls:", page.texts(f"{ours} label span, {ours} p"))
    page.shot(out, page.rect("#txt2img_script_container #script_list", ours))


def hires_upscalers(page: Page, out: Path) -> None:
    if not page.js("const c = gradioApp().querySelector('#txt2img_hr-checkbox input, #txt2img_hr-visible-checkbox');"
                   "return !!(c && c.checked)"):  # fmt: skip
        page.js("const h = gradioApp().querySelector('#txt2img_hr .label-wrap'); if (h) h.click();")
        time.sleep(1)
        page.js("const c = gradioApp().querySelector('#txt2img_hr-visible-checkbox'); if (c && !c.checked) c.click();")
        time.sleep(1)
    page.js("arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -40)", page.q("#txt2img_hr"))
    time.sleep(1)
    entries = page.open_dropdown("#txt2img_hr_upscaler")
    print("hires Upscaler list:", entries)
    if "Latent (NN)" not in entries:
        raise SystemExit("Latent (NN) is not in the hires upscaler list")
    page.choose("Latent (NN)")  # an open list is clipped by A1111's accordion: show it chosen instead
    page.js("document.activeElement && document.activeElement.blur()")
    time.sleep(1)
    print("hires Upscaler now:", page.js("return gradioApp().querySelector('#txt2img_hr_upscaler input').value"))
    page.shot(out, page.rect("#txt2img_hr"))


def settings_section(page: Page, out: Path) -> None:
    page.js("window.scrollTo(0, 0)")
    page.tab("Settings")
    found = page.js("const b = Array.from(gradioApp().querySelectorAll('#settings .tab-nav button'))"
                    ".find(b => b.textContent.trim() == 'Latent Interposer');"
                    "if (b) { b.click(); return true; } return false;")  # fmt: skip
    time.sleep(3)
    if not found:
        raise SystemExit("no Latent Interposer section in Settings")
    print("settings labels:", page.texts("#settings [id^=setting_latent_interposer] label span"))
    page.js("window.scrollTo(0, 0)")
    time.sleep(1)
    page.shot(out, page.rect("#settings [id^=setting_latent_interposer]"))
    page.tab("txt2img")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--prefix", required=True, help="file name prefix, e.g. a1111 or neo")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    args = parser.parse_args(argv)
    driver = _driver(1400, 2000)
    try:
        driver.get(args.url)
        page = Page(driver)
        page.wait_ready()
        hires_upscalers(page, args.out / f"{args.prefix}-hires-upscaler.jpg")
        script_panel(page, args.out / f"{args.prefix}-script.jpg")
        settings_section(page, args.out / f"{args.prefix}-settings.jpg")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
