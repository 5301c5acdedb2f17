"""The web UI ships everything it loads: no CDN, uPlot vendored with its license (no browser needed)."""
from __future__ import annotations

import re
from pathlib import Path

import t9k_em_server

PKG = Path(t9k_em_server.__file__).parent
STATIC, TEMPLATES = PKG / "static", PKG / "templates"

# Any way a page could pull a script, stylesheet, font or image from another origin.
EXTERNAL_LOAD = re.compile(
    r"""<script[^>]+src=["']?(https?:)?//|<link[^>]+href=["']?(https?:)?//|@import\s+(url\()?["']?(https?:)?//"""
    r"""|url\(["']?(https?:)?//|\bimport\s*(\(|[^;'"]*\bfrom\s*)["'](https?:)?//""", re.I)


def test_no_page_loads_from_another_origin():
    files = [*TEMPLATES.glob("*.html"), *STATIC.glob("js/*.js"), *STATIC.glob("css/*.css")]
    assert len(files) > 10
    offenders = [f.name for f in files if EXTERNAL_LOAD.search(f.read_text())]
    assert offenders == []


def test_every_static_reference_in_templates_exists():
    refs = set()
    for template in TEMPLATES.glob("*.html"):
        refs.update(re.findall(r"static\('([^']+)'\)", template.read_text()))
    refs.update(f"js/{m}" for m in re.findall(r"_page\([^)]*?\"(\w+\.js)\"", (PKG / "web.py").read_text()))
    assert "vendor/uplot/uPlot.iife.min.js" in refs and "js/run.js" in refs
    assert [r for r in refs if not (STATIC / r).is_file()] == []


def test_module_imports_resolve():
    for module in STATIC.glob("js/*.js"):
        for target in re.findall(r"""from\s+["'](\./[^"']+)["']""", module.read_text()):
            assert (module.parent / target).is_file(), f"{module.name} imports missing {target}"


def test_uplot_is_vendored_with_its_license():
    vendor = STATIC / "vendor" / "uplot"
    assert "MIT License" in (vendor / "LICENSE").read_text()
    assert "Leon Sorokin" in (vendor / "LICENSE").read_text()
    assert (vendor / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot")
    assert (vendor / "uPlot.min.css").stat().st_size > 500
