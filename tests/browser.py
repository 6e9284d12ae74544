"""Open a page in real headless Chromium and read back what it saw.

A probe script is put in front of the page's own content: it records script
errors, Content-Security-Policy violations, every image's load state, and runs
the page's table sorting, then writes all of it into the DOM that
``--dump-dom`` prints. Nothing else of the page is changed.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

PROBE = """<script>
(function () {
  var seen = {errors: [], violations: []};
  window.addEventListener("error", function (e) {
    seen.errors.push(e.message ? String(e.message) : "error on " + (e.target && e.target.tagName));
  }, true);
  document.addEventListener("securitypolicyviolation", function (e) {
    seen.violations.push(e.violatedDirective + " " + e.blockedURI);
  });
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    seen.images = images.length;
    seen.broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return i.alt; });
    seen.js = document.documentElement.classList.contains("js");
    seen.scripts = document.scripts.length;
    seen.sorts = [];
    document.querySelectorAll("table.sortable").forEach(function (table) {
      var row = table.tBodies[0].rows[0];
      if (!row) { return; }
      for (var c = 0; c < row.cells.length; c++) {
        if (row.cells[c].dataset.value === undefined) { continue; }
        var values = function () {
          return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
            return parseFloat(r.cells[c].dataset.value);
          });
        };
        var th = table.tHead.rows[0].cells[c];
        th.click();
        var up = values();
        th.click();
        seen.sorts.push({column: th.textContent, ascending: up, descending: values()});
        break;
      }
    });
    document.body.setAttribute("data-probe", JSON.stringify(seen));
  });
})();
</script>"""


def browser() -> str:
    """The Chromium to use: ``$QP_BROWSER``, else chromium on PATH."""
    found = (
        os.environ.get("QP_BROWSER") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        raise AssertionError(
            "no chromium: `make test` installs Debian's package as root, "
            "or point QP_BROWSER at a Chromium/Chrome binary"
        )
    return found


def flags(profile: Path) -> list[str]:
    """Headless, no sandbox (root on CI), and no traffic to anything outside."""
    return [
        browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


def probe(page: Path, work: Path) -> dict[str, Any]:
    """Load a copy of ``page`` with the probe and return what the probe saw."""
    text = page.read_text(encoding="utf-8")
    copy = work / "probed.html"
    copy.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = subprocess.run(
        [*flags(work / "profile"), "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, f"the probe never reported (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(html.unescape(found.group(1)))


def print_to_pdf(page: Path, work: Path) -> bytes:
    out = work / "page.pdf"
    subprocess.run(
        [
            *flags(work / "profile-pdf"),
            "--no-pdf-header-footer",
            f"--print-to-pdf={out}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), "chromium printed no PDF"
    return out.read_bytes()
