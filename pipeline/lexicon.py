"""Label lexicon: OCR'd cell text -> canonical key of the record format.

The schema (models/schema.yaml) lists every canonical key per section with its type
and the label variants printed on the forms. From it we build a spaCy pipeline
(blank "zh", character segmenter, no download) with two custom components:

- ``scanforms_label_phrases``: a PhraseMatcher over the cleaned label variants; it
  puts label spans in ``doc.spans["labels"]`` (span label "section|key|canonical").
- ``scanforms_typed_values``: regexes over ``doc.text`` for MONEY / PERCENT / DATE /
  NUMBER, made into ``doc.ents`` with ``doc.char_span(..., alignment_mode="expand")``
  (EntityRuler token patterns misfire when every digit is a token).

The pipeline is saved to models/spacy_labels/ by ``python -m pipeline.lexicon build``
and loaded with ``spacy.load`` (importing this module registers the factories).

``LabelMatcher.match`` cleans the text (NFKC, OpenCC t2s, blanks and punctuation
removed, digit confusables fixed), asks the PhraseMatcher for an exact hit and falls
back to a length-scaled edit distance (rapidfuzz) for damaged labels.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
import yaml
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from .values import fix_digit_confusables, nfkc

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SCHEMA_PATH = MODELS_DIR / "schema.yaml"
SPACY_DIR = MODELS_DIR / "spacy_labels"
TERMS_PATH = MODELS_DIR / "indicator_terms.yaml"

# Search order when no section is given: a label printed in several sections
# (分值 / 得分) resolves to the first of these.
SECTIONS: tuple[str, ...] = ("fields", "goal", "funding", "funding_rows", "indicators", "structure")
SPAN_KEY = "labels"
_NEG = "_non_label"
_SEP = "|"

# ---------------------------------------------------------------------------------------
# cleaning
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # opencc-python-reimplemented: slow to build its dictionaries, so once

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified characters (OCR of faint or bilevel scans reads 運 for 运)."""
    return _t2s().convert(text) if text else text


_YEAR_RE = re.compile(r"[12][0-9]{3}年度?")
# OCR reads the 一 of 一级指标 as a dash, which cleaning would then delete.
_DASH_LEVEL_RE = re.compile(r"[-—–‐－―_~]+(?=级)")
_NOT_WORD_RE = re.compile(r"[^\w%]|_")


@functools.lru_cache(maxsize=65536)
def clean_label(text: str) -> str:
    """The comparable form of a label: NFKC (（元）== (元)), traditional -> simplified,
    digit confusables fixed, a year ('2019年度') dropped, blanks and punctuation removed
    (labels are split by line breaks and blanks on scans; brackets come and go)."""
    s = nfkc(text)
    s = _t2s().convert(s)
    s = fix_digit_confusables(s)
    s = _DASH_LEVEL_RE.sub("一", s)
    s = _NOT_WORD_RE.sub("", s).lower()
    s = _YEAR_RE.sub("", s)
    return s


def max_edits(n: int) -> int:
    """Edits a damaged label of n cleaned characters may carry and still be that label.

    Two-character labels (权重, 得分, 自评, 合计) must be exact: one edit leaves a
    single character, which says nothing. Up to 7 characters one edit: two would let
    sentences that start with a label through ('预算执行率偏低' is a remark)."""
    if n <= 2:
        return 0
    if n <= 7:
        return 1
    if n <= 11:
        return 2
    return 3


# ---------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    section: str
    key: str
    type: str
    labels: tuple[str, ...]

    @property
    def canonical(self) -> str:
        return self.labels[0] if self.labels else ""


@dataclass
class Schema:
    keys: dict[str, dict[str, KeySpec]]  # section -> key -> spec
    non_labels: tuple[str, ...] = ()
    sha256: str = ""

    @classmethod
    def load(cls, path: Path = SCHEMA_PATH) -> Schema:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
        types = set(data.get("types", []))
        keys: dict[str, dict[str, KeySpec]] = {}
        for section, entries in data["sections"].items():
            if section not in SECTIONS:
                raise ValueError(f"{path}: unknown section {section!r}")
            keys[section] = {}
            for key, spec in entries.items():
                if spec["type"] not in types:
                    raise ValueError(f"{path}: {section}.{key}: unknown type {spec['type']!r}")
                keys[section][key] = KeySpec(section, key, spec["type"], tuple(spec.get("labels") or ()))
        return cls(keys, tuple(data.get("non_labels") or ()), hashlib.sha256(raw).hexdigest())

    def specs(self) -> Iterable[KeySpec]:
        for section in SECTIONS:
            yield from self.keys.get(section, {}).values()

    def patterns(self) -> dict[str, list[str]]:
        """Match id ("section|key|canonical") -> pattern texts: each variant as printed
        (blanks removed, NFKC) and cleaned, so the component finds labels both in
        cleaned text (the matcher's input) and in reasonably clean running text."""
        out: dict[str, list[str]] = {}
        for spec in self.specs():
            if not spec.labels:
                continue
            pats: list[str] = []
            for label in spec.labels:
                for p in (re.sub(r"\s+", "", nfkc(label)), clean_label(label)):
                    if p and p not in pats:
                        pats.append(p)
            out[_SEP.join((spec.section, spec.key, spec.canonical))] = pats
        return out


# ---------------------------------------------------------------------------------------
# spaCy components
# ---------------------------------------------------------------------------------------


class LabelPhrases:
    """PhraseMatcher over the schema's label variants; results in doc.spans["labels"]."""

    def __init__(self, nlp: Language, name: str, span_key: str = SPAN_KEY) -> None:
        self.nlp = nlp
        self.name = name
        self.span_key = span_key
        self.patterns: dict[str, list[str]] = {}
        self.matcher = PhraseMatcher(nlp.vocab)

    def add_patterns(self, patterns: dict[str, list[str]]) -> None:
        for match_id, texts in sorted(patterns.items()):
            self.patterns.setdefault(match_id, [])
            new = [t for t in texts if t not in self.patterns[match_id]]
            self.patterns[match_id] += new
            self.matcher.add(match_id, [self.nlp.make_doc(t) for t in new])

    def __call__(self, doc: Doc) -> Doc:
        strings = self.nlp.vocab.strings
        spans = [Span(doc, s, e, label=strings[mid]) for mid, s, e in self.matcher(doc)]
        doc.spans[self.span_key] = spans
        return doc

    def to_disk(self, path: str | Path, exclude: Sequence[str] = ()) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.patterns, ensure_ascii=False, indent=1, sort_keys=True)
        (p / "patterns.json").write_text(text + "\n", encoding="utf-8")

    def from_disk(self, path: str | Path, exclude: Sequence[str] = ()) -> LabelPhrases:
        self.patterns = {}
        self.matcher = PhraseMatcher(self.nlp.vocab)
        self.add_patterns(json.loads((Path(path) / "patterns.json").read_text(encoding="utf-8")))
        return self


@Language.factory("scanforms_label_phrases", default_config={"span_key": SPAN_KEY})
def make_label_phrases(nlp: Language, name: str, span_key: str) -> LabelPhrases:
    return LabelPhrases(nlp, name, span_key)


# Typed values in running text. Order = priority where spans overlap at equal length.
_N = r"[0-9][0-9,，]*(?:\.[0-9]+)?"
VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "DATE",
        re.compile(
            r"[12][0-9]{3}\s*(?:年\s*[0-9]{1,2}\s*月\s*[0-9]{1,2}\s*日?|[-/.][0-9]{1,2}[-/.][0-9]{1,2})"
        ),
    ),
    ("PERCENT", re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?\s*[%％]")),
    (
        "MONEY",
        re.compile(r"[-+]?(?:[0-9]{1,3}(?:[,，][0-9]{3})+(?:\.[0-9]+)?(?:\s*元)?|" + _N + r"\s*(?:万元|元))"),
    ),
    ("NUMBER", re.compile(r"(?<![0-9.])[-+]?[0-9]+(?:\.[0-9]+)?(?![0-9.])")),
)


class TypedValues:
    """Regexes over doc.text -> doc.ents (MONEY / PERCENT / DATE / NUMBER)."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        # match full-width digits too, as long as offsets still line up with doc.text
        norm = nfkc(doc.text)
        text = norm if len(norm) == len(doc.text) else doc.text
        spans: list[Span] = []
        for label, rx in VALUE_PATTERNS:
            for m in rx.finditer(text):
                span = doc.char_span(m.start(), m.end(), label=label, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
        # filter_spans keeps the longest of overlapping spans, the first on ties: the
        # pattern order makes 2020-3-15 a DATE, not three NUMBERs
        doc.ents = filter_spans(spans)
        return doc


@Language.factory("scanforms_typed_values")
def make_typed_values(nlp: Language, name: str) -> TypedValues:
    return TypedValues(nlp, name)


def build_nlp(schema: Schema | None = None) -> Language:
    schema = schema or Schema.load()
    nlp = spacy.blank("zh")  # character segmenter: no model download
    phrases = nlp.add_pipe("scanforms_label_phrases")
    assert isinstance(phrases, LabelPhrases)
    phrases.add_patterns(schema.patterns())
    nlp.add_pipe("scanforms_typed_values")
    nlp.meta["name"] = "scanforms_labels"
    nlp.meta["version"] = "1.0.0"
    nlp.meta["description"] = "Label lexicon of models/schema.yaml; built by python -m pipeline.lexicon build"
    nlp.meta["scanforms_schema_sha256"] = schema.sha256
    return nlp


def save_nlp(nlp: Language, out: Path = SPACY_DIR) -> None:
    """Write atomically (temp dir + rename) so parallel workers never read half a model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".spacy_labels.", dir=out.parent))
    try:
        nlp.to_disk(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_nlp(path: Path = SPACY_DIR, schema: Schema | None = None) -> Language:
    """spacy.load the saved pipeline; build it when missing (and save it), rebuild in
    memory when it is older than schema.yaml."""
    schema = schema or Schema.load()
    if not (path / "config.cfg").exists():
        nlp = build_nlp(schema)
        try:
            save_nlp(nlp, path)
        except OSError as e:  # read-only checkout: the in-memory pipeline is as good
            log.warning("could not save %s: %s", path, e)
        return nlp
    nlp = spacy.load(path)
    if nlp.meta.get("scanforms_schema_sha256") != schema.sha256:
        log.warning("%s is stale (schema.yaml changed); rebuilt in memory, run `make models`", path)
        nlp = build_nlp(schema)
    return nlp


# ---------------------------------------------------------------------------------------
# matcher
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelMatch:
    key: str
    section: str
    label: str  # the canonical label (first variant in the schema)
    score: float  # 1.0 = exact after cleaning; lower for fuzzy hits
    variant: str = ""  # the schema variant nearest the text ('分值' for key weight, label 权重)
    text: str = field(default="", compare=False)  # the cleaned text that matched


@dataclass(frozen=True)
class _Choice:
    section: str
    key: str
    label: str
    pattern: str


class LabelMatcher:
    """Maps a cell's text to a canonical key, per section of the form."""

    def __init__(self, nlp: Language | None = None, schema: Schema | None = None) -> None:
        self.schema = schema or Schema.load()
        self.nlp = nlp or load_nlp(schema=self.schema)
        pipe = self.nlp.get_pipe("scanforms_label_phrases")
        assert isinstance(pipe, LabelPhrases)
        self._phrases = pipe
        choices: list[_Choice] = []
        for match_id, pats in pipe.patterns.items():
            section, key, label = match_id.split(_SEP, 2)
            for p in pats:
                cp = clean_label(p)
                if cp and all(c.pattern != cp or c.key != key or c.section != section for c in choices):
                    choices.append(_Choice(section, key, label, cp))
        for text in self.schema.non_labels:
            choices.append(_Choice(_NEG, _NEG, text, clean_label(text)))
        self._choices = choices
        self._choice_texts = [c.pattern for c in choices]
        self._max_len = max((len(c.pattern) for c in choices), default=0)
        self._order = {s: i for i, s in enumerate(SECTIONS)}
        # (section, key, cleaned pattern) -> the variant as written in the schema
        self._variant: dict[tuple[str, str, str], str] = {}
        for spec in self.schema.specs():
            for label in spec.labels:
                self._variant.setdefault((spec.section, spec.key, clean_label(label)), label)
        self._cache: dict[tuple[str, str | None], LabelMatch | None] = {}

    # --- schema access --------------------------------------------------------------------
    def kind(self, section: str, key: str) -> str:
        """The value type of a key ('money', 'text', ...)."""
        return self.schema.keys[section][key].type

    def keys(self, section: str) -> list[str]:
        return list(self.schema.keys[section])

    def labels(self, section: str, key: str) -> tuple[str, ...]:
        return self.schema.keys[section][key].labels

    # --- matching -------------------------------------------------------------------------
    def match(self, text: str, section: str | None = None) -> LabelMatch | None:
        """The label `text` is, in `section` (any section when None), or None.

        Exact hits (after cleaning) score 1.0. Otherwise the nearest variant by edit
        distance within `max_edits` of its length, scored 1 - d / (2 * length); None
        when the nearest is a known non-label, a label of another section, or a tie
        between different keys (ambiguous damage is no label)."""
        if section is not None and section not in self.schema.keys:
            raise ValueError(f"unknown section {section!r}; one of {SECTIONS}")
        ck = (text, section)
        if ck in self._cache:
            return self._cache[ck]
        if len(self._cache) > 200_000:
            self._cache.clear()
        res = self._match(text, section)
        self._cache[ck] = res
        return res

    def is_label_like(self, text: str) -> bool:
        """True when the text is some label of the form (any section, structural too)."""
        return self.match(text) is not None

    def _best(self, hits: list[_Choice], section: str | None) -> _Choice | None:
        if section is not None:
            hits = [h for h in hits if h.section == section]
        hits.sort(key=lambda h: self._order.get(h.section, 99))
        return hits[0] if hits else None

    def _match(self, text: str, section: str | None) -> LabelMatch | None:
        clean = clean_label(text or "")
        n = len(clean)
        # a label is short: text much longer than the longest variant is a value
        if n == 0 or n > self._max_len + 3:
            return None
        doc = self._phrases(self.nlp.make_doc(clean))
        exact: list[_Choice] = []
        for span in doc.spans[self._phrases.span_key]:
            if span.start == 0 and span.end == len(doc):
                sec, key, label = span.label_.split(_SEP, 2)
                exact.append(_Choice(sec, key, label, clean))
        if exact:
            best = self._best(exact, section)
            # an exact label of another section is not a damaged label of this one
            return self._result(best, 1.0, clean) if best else None
        if n < 2:
            return None
        return self._fuzzy(clean, section)

    def _fuzzy(self, clean: str, section: str | None) -> LabelMatch | None:
        found = process.extract(
            clean, self._choice_texts, scorer=Levenshtein.distance, score_cutoff=3, limit=None
        )
        ok = [
            (int(d), self._choices[i]) for _, d, i in found if d <= max_edits(len(self._choices[i].pattern))
        ]
        if not ok:
            return None
        dmin = min(d for d, _ in ok)
        tied = [c for d, c in ok if d == dmin]
        if any(c.section == _NEG for c in tied):
            return None
        if len({c.key for c in tied}) > 1:
            return None  # equally near two different keys: ambiguous damage
        best = self._best(tied, section)
        if best is None:
            return None
        score = 1.0 - dmin / (2.0 * max(len(clean), len(best.pattern)))
        return self._result(best, round(score, 4), clean)

    def _result(self, c: _Choice, score: float, clean: str) -> LabelMatch:
        variant = self._variant.get((c.section, c.key, c.pattern), c.label)
        return LabelMatch(c.key, c.section, c.label, score, variant, clean)


@functools.lru_cache(maxsize=1)
def get_matcher() -> LabelMatcher:
    """The process-wide matcher (loading spaCy and OpenCC once)."""
    return LabelMatcher()


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.lexicon", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build models/spacy_labels/ from models/schema.yaml")
    b.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    b.add_argument("--out", type=Path, default=SPACY_DIR)
    m = sub.add_parser("match", help="match texts against the lexicon (debugging)")
    m.add_argument("texts", nargs="+")
    m.add_argument("--section", choices=SECTIONS)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        schema = Schema.load(args.schema)
        save_nlp(build_nlp(schema), args.out)
        n = sum(len(v) for v in schema.patterns().values())
        print(f"wrote {args.out} ({n} label patterns, schema sha256 {schema.sha256[:12]})")
        return 0
    lm = LabelMatcher(load_nlp())
    for t in args.texts:
        print(f"{t!r}\t{lm.match(t, args.section)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------
# the category columns' closed vocabulary
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def indicator_terms() -> dict[str, frozenset[str]]:
    """{'level1': {...}, 'level2': {...}}: the terms of models/indicator_terms.yaml."""
    data = yaml.safe_load(TERMS_PATH.read_text(encoding="utf-8")) or {}
    return {k: frozenset(nfkc(t) for t in v or ()) for k, v in data.items()}


def snap_term(text: str, key: str) -> tuple[str, float]:
    """(term, vocab) for a level1/level2 reading: vocab 1.0 if the text is a term, 0.5 if it
    was one substituted character from exactly one term, or that term with its last character
    lost (the term returned instead), 0.0 otherwise."""
    terms = indicator_terms().get(key, frozenset())
    if text in terms:
        return text, 1.0
    if len(text) >= 4:
        near = [t for t in terms if len(t) == len(text) and sum(a != b for a, b in zip(t, text, strict=True)) == 1]
        if len(near) == 1:
            return near[0], 0.5
    if len(text) >= 3:
        # the last character lost (a cell's edge, a faded stroke: '影响力目' for 影响力目标)
        near = [t for t in terms if len(t) == len(text) + 1 and t.startswith(text)]
        if len(near) == 1:
            return near[0], 0.5
    return text, 0.0


_CJK = re.compile(r"[\u4e00-\u9fff]")
_tokenizer: Any = None


def lone_chars(text: str) -> tuple[float, float]:
    """(count, share) of Chinese characters that fit in no dictionary word of the text.

    A misread character ('健金性' for 健全性, '知晚率' for 知晓率) rarely makes a word with
    its neighbours, so the dictionary segmenter leaves it alone; common function
    characters (的, 和, 是 …) stand alone in right text too and are not counted.
    jieba's dictionary ships inside its wheel: no download.
    """
    n_cjk = len(_CJK.findall(text))
    if n_cjk < 2:
        return 0.0, 0.0
    lone = len(lone_positions(text))
    return float(min(lone, 5)), lone / n_cjk


def is_cjk(ch: str) -> bool:
    """Whether `ch` is a Chinese character (the range `lone_chars` counts)."""
    return _CJK.fullmatch(ch) is not None


def word_count_at(text: str, i: int) -> int:
    """How common the dictionary word holding `text[i]` is (jieba's count; the forms' own words
    count 1000), 0 where that character stands alone."""
    tokenizer = _word_tokenizer()
    at = 0
    for tok in tokenizer.cut(text, HMM=False):
        if at <= i < at + len(tok):
            return int(tokenizer.FREQ.get(tok, 0)) if len(tok) >= 2 else 0
        at += len(tok)
    return 0


def lone_positions(text: str) -> list[int]:
    """Where in `text` the characters `lone_chars` counts stand (indexes into `text`)."""
    if len(_CJK.findall(text)) < 2:
        return []
    tokenizer = _word_tokenizer()
    out, at = [], 0
    for tok in tokenizer.cut(text, HMM=False):
        if len(tok) == 1 and _CJK.match(tok) and tok not in _SUFFIXES and tokenizer.FREQ.get(tok, 0) < _COMMON_FREQ:
            out.append(at)
        at += len(tok)
    return out


SINGLE_FREQ = 1000  # the count every character standing alone is given in `text_logprob`


def text_logprob(text: str) -> float:
    """Natural log-probability of `text`'s likeliest split into dictionary words: how much a run
    of characters reads like words, to weigh one reading of it against another.

    jieba's unigram model over its counts (the forms' own words included), except that every
    character standing alone counts SINGLE_FREQ: by their own counts the commonest characters
    outweigh any word (和完为止 scored above 扣完为止, 有或性 above 有效性 split over two lines),
    and a model of words should prefer words, not frequent characters."""
    import math

    tokenizer = _word_tokenizer()
    n = len(text)
    if not n:
        return 0.0
    dag = tokenizer.get_DAG(text)
    log_total = math.log(tokenizer.total)
    single = math.log(SINGLE_FREQ) - log_total
    best = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        best[i] = max((single if j == i else math.log(tokenizer.FREQ.get(text[i:j + 1]) or 1) - log_total)
                      + best[j + 1] for j in dag[i])
    return best[0]


_COMMON_FREQ = 100_000  # jieba counts: 的 318825, 和 555815, 与 160984 stand alone in right text
# suffixes and measure words that end the forms' indicator names (完成及时率, ≥8 批, 0次)
_SUFFIXES = frozenset("率性度次项批天分个人元年月日号")
_tok_lock = threading.Lock()


def _word_tokenizer() -> Any:
    """jieba's dictionary plus the forms' own words (labels, level terms, models/domain_words.txt)."""
    global _tokenizer
    with _tok_lock:  # documents run in threads: build it once
        if _tokenizer is None:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            words = {t for terms in indicator_terms().values() for t in terms}
            words |= {label for spec in Schema.load().specs() for label in spec.labels}
            path = MODELS_DIR / "domain_words.txt"
            words |= {w.strip() for w in path.read_text(encoding="utf-8").splitlines()
                      if w.strip() and not w.startswith("#")}
            for w in sorted(words):
                if len(w) >= 2 and _CJK.search(w):
                    tok.add_word(w, freq=1000)
            _tokenizer = tok
    return _tokenizer
