"""Typed values as the spec defines them (shared/spec/record-format.md, "Types").

Every parser takes the raw text of a cell as OCR read it and is tolerant of the
noise seen on the scans: blanks inside numbers ('100. 00', '2,523 ,747.0 0'),
full-width digits and punctuation, '，' as thousands separator, O/o read for 0
and l/I/| read for 1 inside digit runs, a trailing 元. The single-type parsers
return None when the text does not parse; `parse_value` turns that into
(None, False) so callers never need a try/except.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Callable, Iterable

Number = int | float
Parsed = str | int | float | bool | None

# Cells meaning "nothing here" (the spec: a dash on the form is null).
DASHES = frozenset({"-", "--", "—", "——", "–", "－", "/", "―", "−"})
# A lone 一 in a numeric cell is a dash read as the CJK character.
_NUMERIC_DASHES = DASHES | {"一"}

_WS = re.compile(r"\s+")
# Runs that look numeric but may hold letters OCR confuses with digits.
_DIGITISH = re.compile(r"[0-9OoIl|]*[0-9][0-9OoIl|.,]*|[OoIl|]+(?=[.,][0-9])")
_CONFUSABLE = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1"})


def nfkc(text: str) -> str:
    """Unicode NFKC: full-width digits, brackets, '，' '％' '：' become ASCII."""
    return unicodedata.normalize("NFKC", text or "")


def fix_digit_confusables(text: str) -> str:
    """O/o -> 0 and l/I/| -> 1, only inside runs that already hold a digit."""
    return _DIGITISH.sub(lambda m: m.group(0).translate(_CONFUSABLE), text)


def is_cjk(ch: str) -> bool:
    """CJK ideographs plus CJK/full-width punctuation: Chinese typesetting puts no blank
    between these, so a line break between two of them is joined with nothing."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x2FA1F
        or 0x3000 <= o <= 0x303F
        or 0xFF00 <= o <= 0xFFEF
        or o in (0x201C, 0x201D, 0x2018, 0x2019)  # “ ” ‘ ’ as used in Chinese text
    )


def join_lines(lines: Iterable[str]) -> str:
    """Join the lines of one cell: nothing between two CJK characters, one space
    elsewhere; blank lines dropped and surrounding blanks removed."""
    out = ""
    for line in lines:
        s = (line or "").strip()
        if not s:
            continue
        if out and not (is_cjk(out[-1]) and is_cjk(s[0])):
            out += " "
        out += s
    return out


def _is_dash(raw: str, numeric: bool) -> bool:
    s = _WS.sub("", nfkc(raw))
    return s in (_NUMERIC_DASHES if numeric else DASHES)


_GROUPS_COMMA_CENTS_RE = re.compile(r"[0-9]{1,3}(,[0-9]{3})*,[0-9]{2}")
_GROUPS_BLANK_CENTS_RE = re.compile(r"[0-9]{1,3}(,[0-9]{3})+\s+[0-9]{2}")
# Two figures of two characters or more apart, the second not going on from the first: two
# columns' figures read as one line across a rule the grid lost (分值 and 得分: '10 10' would be
# 1010). A number wrapped in its cell goes on ('100.0 0', '2,523,7 47.00') and a blank between
# two lone digits is the recogniser's ('(1 5 分)'); on the dev corpus every blank between digits
# of a numeric cell is one of those
_TWO_NUMBERS_RE = re.compile(r"[-+]?[1-9][0-9]+\s+[-+]?(?:[1-9][0-9]+(?:\.[0-9]+)?|[0-9]\.[0-9]+)")


def _numeric_core(raw: str) -> str | None:
    """The number in a cell as a plain ASCII string ('-1234.5'), or None."""
    s = nfkc(raw).strip()
    if _GROUPS_BLANK_CENTS_RE.fullmatch(s):  # '2,791,900 00': the point read as a blank
        s = _WS.sub(",", s)
    if _TWO_NUMBERS_RE.fullmatch(s):
        return None  # '10 10', '100 98.86': two cells' figures run together, not one number
    s = _WS.sub("", s)
    if not s:
        return None
    s = s.lstrip("¥$")
    s = re.sub(r"(元整?|分)$", "", s)
    # specks next to a number read as marks ('·8', '.5', "9'"): a form never prints them there
    s = s.strip("·•.,'`:;_~\"")
    if s in ("o", "O"):  # a lone zero read as a letter
        s = "0"
    elif s in ("s", "S"):  # a lone soft 5 (heavy d030: three weight and score cells)
        s = "5"
    s = fix_digit_confusables(s)
    m = re.fullmatch(r"([-+]?)([0-9][0-9.,]*)", s)
    if not m:
        return None
    sign, body = m.groups()
    body = body.rstrip(".,")
    if not body:
        return None
    if _GROUPS_COMMA_CENTS_RE.fullmatch(body):
        # '2,515,100,00', '100,00': the point read as a comma (heavy and photo scans: 6 dev
        # cells 100x too large); thousands come in threes, so a last group of two is cents
        body = body[:-3] + "." + body[-2:]
    if body.count(".") > 1:
        # '225.000.00': OCR read thousands commas as dots; keep only the last as decimal point
        head, _, tail = body.rpartition(".")
        if not all(len(g) == 3 for g in head.replace(",", ".").split(".")[1:]):
            return None
        body = head.replace(".", "") + "." + tail
    body = body.replace(",", "")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", body):
        return None
    return sign + body


def _as_number(x: float) -> Number:
    """int when integral ('100.00' -> 100), else the float."""
    return int(x) if x.is_integer() else x


def parse_money(raw: str) -> float | None:
    """Yuan as a float: '2,523,747.00' -> 2523747.0, '636,500' -> 636500.0;
    '63.65万' (ten-thousands) -> 636500.0."""
    s = nfkc(raw or "").strip()  # blanks go in _numeric_core, which reads one as a point
    scale = 1.0
    m = re.fullmatch(r"(.*?)万\s*元?", s)
    if m:
        s, scale = m.group(1), 10000.0
    core = _numeric_core(s)
    if core is None:
        return None
    return round(float(core) * scale, 2)


def parse_percent(raw: str) -> float | None:
    """The number before the % sign: '65.37%' -> 65.37; '0.00' (no sign) -> 0.0."""
    s = _WS.sub("", nfkc(raw or ""))
    s = s.rstrip("%")
    core = _numeric_core(s)
    return None if core is None else float(core)


def parse_number(raw: str) -> Number | None:
    """int or float: '8.09' -> 8.09, '100.00' -> 100, '100. 00' -> 100."""
    core = _numeric_core(raw or "")
    return None if core is None else _as_number(float(core))


def parse_int(raw: str) -> int | None:
    v = parse_number(raw)
    return v if isinstance(v, int) else None


_DATE_SEP = "[" + re.escape("".join(sorted({d for d in DASHES if len(d) == 1} | {".", "~"}))) + "]"
_DATE_RES = (
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
    # any dash (DASHES) or a tilde the recogniser reads one as (2022~7-5 on a 135-DPI scan, dev d061)
    re.compile(r"(\d{4})" + _DATE_SEP + r"(\d{1,2})" + _DATE_SEP + r"(\d{1,2})"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
)


def parse_date(raw: str) -> str | None:
    """ISO 8601: '2020年6月12日', '2021/7/16', '2020-3-15', '2020.3.15' -> '2020-03-15'."""
    s = fix_digit_confusables(_WS.sub("", nfkc(raw or "")))
    for rx in _DATE_RES:
        m = rx.fullmatch(s)
        if m:
            try:
                return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
            except ValueError:
                return None
    return None


_TRUE = frozenset({"是", "√是", "☑是", "√", "yes", "y", "true"})
_FALSE = frozenset({"否", "√否", "☑否", "×", "no", "n", "false"})


def _bool_or_invalid(raw: str) -> bool | None | str:
    s = _WS.sub("", nfkc(raw or "")).lower()
    if not s or s in DASHES:
        return None
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    return "invalid"


def parse_bool(raw: str) -> bool | None:
    """是 -> True, 否 -> False, blank (or anything else) -> None."""
    v = _bool_or_invalid(raw)
    return v if isinstance(v, bool) else None


def clean_text(raw: str) -> str | None:
    """Text as written; surrounding blanks removed, empty -> None."""
    s = (raw or "").strip()
    return s or None


_POINTS_RE = re.compile(r"[(（]\s*([0-9OoIl|][0-9OoIl|.\s]*)\s*分?\s*[)）]?\s*$")
# A damaged points suffix: from a bracket to the end with no CJK left in it ('(0.4.(\\)').
_DAMAGED_SUFFIX_RE = re.compile(r"\s*[(（][^\u3400-\u9fff]*$")


def _squeeze_cjk_blanks(text: str) -> str:
    """Blanks between two CJK characters are line-wrap artefacts: drop them."""
    return re.sub(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])", "", text)


def split_level1(raw: str) -> tuple[str, Number | None]:
    """'投入与管理 (36分)' -> ('投入与管理', 36); '投入与 管理 （36分）' too; no or damaged
    points suffix -> (name, None)."""
    s = _SPECKS_RE.sub("", (raw or "").strip())
    m = _POINTS_RE.search(s)
    points: Number | None = None
    if m:
        figure = m.group(1)
        if "分" not in m.group(0) and re.fullmatch(r"[0-9]{2}9", figure.strip()):
            # a 分 read as 9 ('(369)' for (36分), photo d044, heavy d014: 13 cells): three
            # figures ending in 9 would be 109 points or more, past any form's 100
            figure = figure.strip()[:2]
        points = parse_number(figure)
        s = s[: m.start()]
    else:
        loose = _LOOSE_POINTS_RE.search(s)  # '（ ·34分)', '（15 • 分)', ' 15分).'
        if loose and loose.start() > 0:
            points = parse_number(loose.group(1))
            s = s[: loose.start()]
        else:
            d = _DAMAGED_SUFFIX_RE.search(s)
            if d and d.start() > 0:  # points unreadable: drop the remains, keep the name
                s = s[: d.start()]
    return strip_specks(_squeeze_cjk_blanks(s.strip())), points


# Marks that scanning noise (specks, dust) turns into: never part of a form's short texts.
SPECKS = "·•∙●★☆"
_SPECKS_RE = re.compile(f"[{SPECKS}]")
_LOOSE_POINTS_RE = re.compile(r"[（(]?[^0-9\u4e00-\u9fff]*([0-9]{1,3})[^0-9\u4e00-\u9fff]*分[^\u4e00-\u9fff]*$")


def drop_unpaired_quotes(text: str) -> str:
    """Remove a “ with no ” after it (and a ” with no “ before it): stains read as quotes."""
    out: list[str] = []
    open_at: int | None = None
    for ch in text:
        if ch == "“":
            if open_at is not None:
                out[open_at] = ""  # the earlier one was never closed
            open_at = len(out)
        elif ch == "”":
            if open_at is None:
                continue
            open_at = None
        out.append(ch)
    if open_at is not None:
        out[open_at] = ""
    return "".join(out)


def strip_specks(text: str) -> str:
    """Remove speck marks anywhere, and stray dots / commas at the ends of a text."""
    t = drop_unpaired_quotes(_SPECKS_RE.sub("", text or ""))
    t = re.sub(r"^[\s.,，、。:;'`_~-]+", "", t)
    t = re.sub(r"[\s.,'`_~-]+$", "", t)
    return t


_YEAR_RE = re.compile(r"([12][0-9OoIl]{3})\s*年")


def fiscal_year_from_title(text: str) -> int | None:
    """'2019年度财政项目绩效自我评价' -> 2019; '（ 2022 年度）' -> 2022; None if no year."""
    s = nfkc(text or "")
    s = re.sub(r"(?<=\d)\s+(?=\d)", "", s)  # '2 0 2 2 年度'
    for m in _YEAR_RE.finditer(s):
        y = int(fix_digit_confusables(m.group(1)))
        if 1990 <= y <= 2100:
            return y
    return None


_PARSERS: dict[str, Callable[[str], Parsed]] = {
    "money": parse_money,
    "percent": parse_percent,
    "number": parse_number,
    "int": parse_int,
    "date": parse_date,
    "text": clean_text,
}
KINDS = frozenset({*_PARSERS, "bool"})


def parse_value(kind: str, raw: str | None) -> tuple[Parsed, bool]:
    """Parse `raw` as `kind` (text/money/percent/number/int/date/bool).

    Returns (value, ok). Empty or a dash is (None, True): the form says "nothing".
    Text that does not parse is (None, False), never an exception.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown value kind {kind!r}")
    raw = raw or ""
    if not raw.strip() or _is_dash(raw, numeric=kind not in ("text", "bool")):
        return None, True
    if kind == "bool":
        b = _bool_or_invalid(raw)
        return (None, False) if isinstance(b, str) else (b, True)
    v = _PARSERS[kind](raw)
    return v, v is not None


_CIRCLED = "①②③④⑤⑥⑦⑧⑨"
# a bare digit opening a clause and running into Chinese text: a list marker read without its circle
_BARE_MARK_RE = re.compile(r"(?<![^；;:：。）)\s])([1-9])(?=\s?[\u4e00-\u9fff])")
_CIRCLED_RE = re.compile(f"[{_CIRCLED}]")


def repair_enumeration(text: str) -> str:
    """'1是否…（1分）2绩效目标…（2分）③是…' -> '①是否…（1分）②绩效目标…（2分）③是…'.

    Scoring rules enumerate their clauses with circled numbers; on a blurred or 1-bit scan
    the recognizer reads ① as 1. A bare digit is taken for a marker only where it opens a
    clause and runs straight into Chinese text, and only while the markers found, circled or
    bare, count 1, 2, 3 … in order from the first: a figure ('得5分', '（1分）') never does both.
    """
    marks = [(m.start(), _CIRCLED.index(m.group()) + 1, True) for m in _CIRCLED_RE.finditer(text)]
    marks += [(m.start(), int(m.group(1)), False) for m in _BARE_MARK_RE.finditer(text)]
    if len(marks) < 2 or all(circled for *_, circled in marks):
        return text
    marks.sort()
    k = 0  # the markers that count 1, 2, 3 … from the start (a misread later one ends the run)
    while k < len(marks) and marks[k][1] == k + 1:
        k += 1
    if k < 2:
        return text
    chars = list(text)
    for pos, n, circled in marks[:k]:
        if not circled:
            chars[pos] = _CIRCLED[n - 1]
    return "".join(chars)


# a '.' between two Chinese characters: Chinese prose has no such full stop, the recognizer
# reads a small '，' as one (dev corpus: 31 of 36 such dots were '，' in the truth, 2 '、', 3
# nothing; on 1-bit and TIFF scans '分.部分完成' for '分，部分完成')
_DOT_IN_CJK_RE = re.compile(r"(?<=[\u3400-\u9fff])\s*[.．]\s*(?=[\u3400-\u9fff])")
# a value ends with a '：' only where the '。' after its last character was misread (a colon
# introduces what follows; dev corpus: 5 of 5 such endings were '。')
_END_COLON_RE = re.compile(r"(?<=[\u3400-\u9fff])\s*[:：]\s*$")
# a ':' before the second and later items of a list: items are separated by '；' (a colon opens
# a list, before ①), and a small '；' reads as '：' ('得8分：②未按计划…'). Not before a clause's
# points: the seeds print '；（1分）' 45 times, but dev d015's forms print '目标:(1分)'
# (+7 cells, d015 -2: not kept; `ocr.mark_fixes` decides those from the recogniser's runner-ups)
_COLON_BEFORE_ITEM_RE = re.compile(r"[:：](?=\s*[②③④⑤⑥⑦⑧⑨])")
# a '.' between a figure and its unit ('≥4.天', '>52.批', '得21.分'): a speck (a decimal point has
# figures after it; an enumeration's '1. 一个…' is followed by no unit)
_DOT_BEFORE_UNIT_RE = re.compile(r"(?<=[0-9])[.．](?=\s?[分天次批项个人元月日号%])")


def repair_punctuation(text: str) -> str:
    """'得5分.部分完成' -> '得5分，部分完成'; '进一步加强：' -> '进一步加强。'; '≥4.天' -> '≥4天';
    '得8分：②未完成' -> '得8分；②未完成' (OCR'd text only)."""
    text = _COLON_BEFORE_ITEM_RE.sub("；", text)
    return _DOT_BEFORE_UNIT_RE.sub("", _END_COLON_RE.sub("。", _DOT_IN_CJK_RE.sub("，", text)))
