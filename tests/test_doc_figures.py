"""Every figure rendered from bench/results/ agrees with its JSON (`python -m bench.render_docs`)."""

from __future__ import annotations

import pytest

from bench import render_docs


def test_every_figure_region_says_what_its_json_says():
    stale = [str(path) for path, (now, rendered) in render_docs.rendered_docs().items() if now != rendered]
    assert stale == [], "figures differ from bench/results/: run `python -m bench.render_docs` and commit"


def test_a_figure_edited_by_hand_is_caught_and_rendered_back():
    readme = (render_docs.REPOSITORY / "README.md").read_text()
    figure = render_docs.results_table(render_docs.load("results.json")).splitlines()[2]
    tampered = readme.replace(figure, figure.replace("|", "| 1", 2))
    assert tampered != readme
    assert render_docs.render_text("README.md", tampered) == readme


def test_each_region_is_in_its_doc_once():
    for region in render_docs.REGIONS:
        for doc in region.docs:
            text = (render_docs.REPOSITORY / doc).read_text()
            assert text.count(f"<!-- figures: {region.name} (bench/results/{region.source}) -->") == 1, doc


@pytest.mark.parametrize("region", render_docs.REGIONS, ids=lambda r: r.name)
def test_each_figure_renders_from_its_committed_json(region):
    assert (render_docs.RESULTS / region.source).exists()
    assert region.render(render_docs.load(region.source)).strip()
