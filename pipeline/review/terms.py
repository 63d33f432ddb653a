"""Reviewers' terms as a lexicon addition: `scanforms review --export-terms FILE`.

A 一级/二级指标 value a reviewer set or confirmed that the closed vocabulary
(models/indicator_terms.yaml) lacks is a term of a template the vocabulary has not met: the
export lists them in that file's own format (level1 / level2 lists, each term with the cells
it came from as a comment), for a person to merge into models/ (a new vocabulary changes
outputs: bump the version, see README)."""

from __future__ import annotations

from pathlib import Path

from .store import DecisionStore, db_path

TERM_KEYS = ("level1", "level2")


def new_terms(out_dir: Path) -> dict[str, dict[str, list[str]]]:
    """{key: {term: [files it was decided in]}} for decided level1/level2 values not in the vocabulary."""
    from ..lexicon import indicator_terms
    from ..values import nfkc

    path = db_path(out_dir)
    if not path.exists():
        return {}
    with DecisionStore(path) as store:
        decisions = store.all()
    known = indicator_terms()
    out: dict[str, dict[str, list[str]]] = {}
    for d in decisions.values():
        if d.cell.section != "indicators" or d.cell.key not in TERM_KEYS or not isinstance(d.value, str):
            continue
        term = nfkc(d.value).strip()
        if not term or term in known.get(d.cell.key, frozenset()):
            continue
        files = out.setdefault(d.cell.key, {}).setdefault(term, [])
        if d.file not in files:
            files.append(d.file)
    return out


def terms_yaml(terms: dict[str, dict[str, list[str]]]) -> str:
    import json

    lines = ["# Terms reviewers set on 一级/二级指标 cells that models/indicator_terms.yaml lacks:",
             "# merge them into that file's lists (and bump the version in pyproject.toml)."]
    for key in TERM_KEYS:
        if key not in terms:
            continue
        lines.append(f"{key}:")
        for term, files in sorted(terms[key].items()):
            # JSON strings are YAML strings: quoted, so no term is read as another type
            lines.append(f"  - {json.dumps(term, ensure_ascii=False)}  # {', '.join(sorted(files))}")
    return "\n".join(lines) + "\n"


def write_terms(out_dir: Path, path: Path) -> int:
    """The addition to `path`; returns how many terms."""
    from ..export import atomic_write_text

    terms = new_terms(out_dir)
    atomic_write_text(path, terms_yaml(terms))
    return sum(len(v) for v in terms.values())
