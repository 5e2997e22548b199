"""Text pieces shared by the deterministic evaluators: sentences, content tokens, numbers, entities.

Deliberately simple and fast (regular expressions, a light suffix stemmer, a fixed stop-word list):
the gate runs thousands of rows, and these checks must stay well under a millisecond a row.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each either else ever few for
from further had has have having he her here hers herself him himself his how however i if in
into is it its itself just let like may me might more most much must my myself neither no nor
not now of off on once only or other ought our ours ourselves out over own per same shall she
should so some such than that the their theirs them themselves then there these they this those
through thus to too under until up upon us very via was we were what when where whether which
while who whom whose why will with within without would yes yet you your yours yourself
yourselves sure okay ok well certainly indeed here's there's it's that's let's i'm you're
""".split()) | frozenset(
    # German, French and Spanish function words: German capitalises nouns and the formal "Sie",
    # so without these a correct German answer looks like it invents names.
    """
der die das den dem des ein eine einer einem einen und oder aber nicht kein keine ist sind war
wird werden kann können muss müssen mit von zu zum zur im in am an auf aus bei für über unter
nach vor als auch nur noch schon sie ihr ihre ihnen wir uns ich du er es man sich hier dort wie
was wer wo wann ob dass wenn dann bitte gerne
le la les un une des du de et ou mais ne pas est sont avec pour par sur dans au aux vous nous
il elle ils elles je tu on se ce cette ces qui que quoi
el los las uno una unos unas y o pero no es son con para por en del al usted ustedes nosotros
él ella ellos yo tú se este esta estos que quien
""".split())

NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "cannot", "without", "neither",
                       "nobody", "nothing", "nowhere"})

NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
                "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30", "fifty": "50",
                "hundred": "100", "thousand": "1000", "half": "0.5"}

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+\s*")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")  # letters of any script, not only ASCII
_NUMBER = re.compile(r"(?<![A-Za-z0-9.])[-+]?\d[\d,]*(?:\.\d+)?")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,200})[\"“”]")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|Mr|Mrs|Ms|Dr|Inc|Ltd|Co|St|approx|No)\.$")


def split_sentences(text: str) -> list[str]:
    """Sentences and bullet items, stripped, without abbreviation splits such as "e.g."."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = _BULLET.sub("", piece).strip()
        if not piece:
            continue
        if out and _ABBREV.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stemmer: matches 'launched' with 'launch', 'policies' with 'policy'."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4:
        for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
            if w.endswith(suffix) and not w.endswith("ss") and len(w) - len(suffix) >= 3:
                return w[: len(w) - len(suffix)] + repl
    return w


def words(text: str) -> list[str]:
    return _WORD.findall(text)


@lru_cache(maxsize=65536)
def is_negation(word: str) -> bool:
    w = word.lower().replace("’", "'")
    return w in NEGATIONS or w.endswith("n't")


@lru_cache(maxsize=16384)
def content_tokens(text: str) -> frozenset[str]:
    """Stemmed lower-case words that carry meaning (stop words, negations and numbers removed)."""
    out = set()
    for w in words(text):
        lw = w.lower()
        if lw in STOPWORDS or is_negation(lw) or lw[0].isdigit() or lw in NUMBER_WORDS:
            continue
        out.add(stem(lw))
    return frozenset(out)


def _canon_number(raw: str) -> str | None:
    raw = raw.replace(",", "").lstrip("+")
    try:
        value = float(raw)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def numbers(text: str) -> set[str]:
    """Numbers in a canonical form ('1,200' and '1200.0' are the same), number words included."""
    out = set()
    for raw in _NUMBER.findall(text):
        canon = _canon_number(raw)
        if canon is not None:
            out.add(canon)
    for w in words(text):
        if w.lower() in NUMBER_WORDS:
            out.add(NUMBER_WORDS[w.lower()])
    return out


def entities(sentence: str) -> set[str]:
    """Stems of capitalised words and acronyms: names a grounded answer must not invent.

    Stop words never count, so a sentence-initial "The" or "However" is not a name.
    """
    out = set()
    for w in words(sentence):
        if not w[0].isupper() or w.lower() in STOPWORDS or is_negation(w):
            continue
        out.add(stem(w.lower()))
    return out


def quoted(text: str) -> list[str]:
    return [q.strip() for q in _QUOTED.findall(text)]


def normalise(text: str, *, ignore_case: bool = True, strip_punctuation: bool = False) -> str:
    """Whitespace collapsed, optionally lower-cased and without punctuation."""
    if ignore_case:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(_PUNCT)
    return " ".join(text.split())


_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’"})


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 over content tokens (words when either side has none)."""
    p, r = content_tokens(prediction), content_tokens(reference)
    if not p or not r:
        p = {w.lower() for w in words(prediction)}
        r = {w.lower() for w in words(reference)}
    if not p or not r:
        return float(p == r)
    common = len(p & r)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)
