"""The README's links into docs/ resolve (`mkdocs build --strict`, run by `make test` and
`make docs`, checks the links between the pages of the site itself), and every page of docs/ is
in the site's navigation."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _local_targets(text: str) -> list[str]:
    return [t.split("#", 1)[0] for t in LINK.findall(text)
            if "://" not in t and not t.startswith(("#", "mailto:"))]


def test_readme_links_resolve():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        targets = _local_targets(f.read())
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if not os.path.exists(os.path.join(ROOT, t))]
    assert missing == [], f"README links to missing files: {missing}"


def test_every_page_is_in_the_navigation():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        nav = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", f.read(), re.M))
    docs = os.path.join(ROOT, "docs")
    pages = {os.path.relpath(os.path.join(d, n), docs).replace(os.sep, "/")
             for d, _, names in os.walk(docs) for n in names if n.endswith(".md")}
    assert pages == nav, (f"not in mkdocs.yml nav: {sorted(pages - nav)}; "
                          f"in nav but missing: {sorted(nav - pages)}")


def test_cli_reference_is_generated_from_the_click_commands():
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        text = f.read()
    assert "::: mkdocs-click" in text and ":module: modelport.cli" in text
