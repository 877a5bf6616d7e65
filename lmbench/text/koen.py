"""`synthetic:ko-en` — a seeded Korean→English sentence-pair generator with real word-order differences.

Every sentence is built by this module from a small lexicon (no real sentences are copied). Korean is
written morpheme-segmented — particles are separate tokens (`학생 은 사과 를 먹는다`), as a Korean
morphological analyser would give them — so one whitespace tokenizer serves both sides.

What makes it a translation task rather than a word-for-word substitution:
- clause order: Korean is SOV with the verb last, English SVO — `학생 은 사과 를 먹는다 → the student eats the apple`;
- particles: topic 은/는, subject 이/가, object 을/를, place 에서, destination 에 (chosen by whether the noun
  ends in a consonant, as in Korean), English shows the same roles by position and prepositions;
- relative clauses precede the noun in Korean and follow it in English (`사과 를 먹는 학생 → the student that eats
  the apple`), the time adverb opens the Korean sentence and closes the English one;
- English-only morphology: articles (a/an/the), plurals (irregular ones too), subject–verb agreement, object
  pronouns, do-support in negation; Korean-only: the tense at the end of a conjoined sentence (`먹고 … 읽었다`
  → `ate … and … read`).
Sentence lengths run from 3 tokens to over 40 through adjectives, relative clauses and up to three clauses.
"""

from __future__ import annotations

import numpy as np

from lmbench.errors import LmbenchError

# --- Hangul syllable arithmetic: syllable = 0xAC00 + (initial·21 + medial)·28 + final ---------------------
_BASE = 0xAC00
_FINAL_N, _FINAL_L, _FINAL_SS = 4, 8, 20
_MED = {"ㅏ": 0, "ㅐ": 1, "ㅓ": 4, "ㅔ": 5, "ㅕ": 6, "ㅗ": 8, "ㅘ": 9, "ㅙ": 10, "ㅚ": 11, "ㅜ": 13, "ㅝ": 14,
        "ㅡ": 18, "ㅣ": 20}
# Vowel contraction of a vowel-final stem with the past tense 아/어 (보+았 → 봤, 기다리+었 → 기다렸).
_PAST_CONTRACT = {_MED["ㅏ"]: _MED["ㅏ"], _MED["ㅗ"]: _MED["ㅘ"], _MED["ㅜ"]: _MED["ㅝ"], _MED["ㅣ"]: _MED["ㅕ"],
                  _MED["ㅡ"]: _MED["ㅓ"], _MED["ㅓ"]: _MED["ㅓ"], _MED["ㅐ"]: _MED["ㅐ"], _MED["ㅔ"]: _MED["ㅔ"],
                  _MED["ㅚ"]: _MED["ㅙ"]}


def _split(syllable: str) -> tuple[int, int, int]:
    code = ord(syllable) - _BASE
    if not 0 <= code < 11172:
        raise ValueError(f"{syllable!r} is not a Hangul syllable")
    return code // 588, (code % 588) // 28, code % 28


def _join(initial: int, medial: int, final: int) -> str:
    return chr(_BASE + (initial * 21 + medial) * 28 + final)


def has_final_consonant(word: str) -> bool:
    """Whether a Hangul word ends in a consonant (batchim): it picks 은/이/을 over 는/가/를."""
    return _split(word[-1])[2] != 0


def _with_final(stem: str, final: int) -> str:
    i, m, _ = _split(stem[-1])
    return stem[:-1] + _join(i, m, final)


def conjugate(stem: str) -> dict[str, str]:
    """Forms of a regular Korean verb stem: present, past, adnominal (present/past/future), connective."""
    _, med, fin = _split(stem[-1])
    vowel_final, l_final = fin == 0, fin == _FINAL_L
    if vowel_final or l_final:  # 보 → 본다, 만들 → 만든다
        present = _with_final(stem, _FINAL_N) + "다"
        adn_past = _with_final(stem, _FINAL_N)
    else:
        present, adn_past = stem + "는다", stem + "은"
    adn_present = (_with_final(stem, 0) if l_final else stem) + "는"
    adn_future = _with_final(stem, _FINAL_L) if vowel_final else stem + ("" if l_final else "을")
    if stem.endswith("하"):
        past = stem[:-1] + "했다"
    elif vowel_final and med in _PAST_CONTRACT:
        i, _, _ = _split(stem[-1])
        past = stem[:-1] + _join(i, _PAST_CONTRACT[med], _FINAL_SS) + "다"
    else:
        past = stem + ("았다" if med in (_MED["ㅏ"], _MED["ㅗ"]) else "었다")
    return {"present": present, "past": past, "adn_present": adn_present, "adn_past": adn_past,
            "adn_future": adn_future, "connective": stem + "고"}


def _pairs(text: str) -> list[tuple[str, ...]]:
    return [tuple(item.split(":")) for item in text.split()]


# --- the lexicon: Korean, then English (plural forms given where irregular) -----------------------------------
PEOPLE = _pairs(
    "학생:student 선생님:teacher 의사:doctor 아이:child:children 친구:friend 엄마:mother 아빠:father "
    "할머니:grandmother 할아버지:grandfather 요리사:cook 가수:singer 농부:farmer 군인:soldier 간호사:nurse "
    "화가:painter 기자:reporter 왕:king 여왕:queen 소년:boy 소녀:girl 남자:man:men 여자:woman:women "
    "아기:baby:babies 경찰관:officer 운전사:driver 작가:writer"
)
ANIMALS = _pairs(
    "개:dog 고양이:cat 말:horse 토끼:rabbit 곰:bear 여우:fox:foxes 원숭이:monkey 오리:duck 돼지:pig 양:sheep:sheep"
)
FOODS = _pairs(
    "사과:apple 빵:bread:breads 케이크:cake 계란:egg 오렌지:orange 사탕:candy:candies 바나나:banana "
    "샌드위치:sandwich:sandwiches 감자:potato:potatoes 당근:carrot"
)
THINGS = _pairs(
    "책:book 편지:letter 의자:chair 창문:window 문:door 컴퓨터:computer 자전거:bicycle 자동차:car 모자:hat "
    "신발:shoe 가방:bag 꽃:flower 나무:tree 그림:picture 노래:song 공:ball 상자:box:boxes 컵:cup 접시:plate "
    "시계:watch:watches 전화기:phone 열쇠:key 우산:umbrella 지도:map 연필:pencil 공책:notebook 선물:gift "
    "장난감:toy 칼:knife:knives 사진:photo"
)
PLACES = _pairs(
    "공원:park:in 학교:school:at 도서관:library:in 시장:market:at 부엌:kitchen:in 정원:garden:in "
    "교실:classroom:in 병원:hospital:at 식당:restaurant:at 역:station:at 숲:forest:in 마을:village:in "
    "도시:city:in 바닷가:beach:on 호텔:hotel:at 가게:shop:at"
)
ADJECTIVES = _pairs(
    "큰:big 작은:small 새로운:new 오래된:old 예쁜:pretty 빨간:red 파란:blue 노란:yellow 하얀:white 검은:black "
    "조용한:quiet 친절한:kind 똑똑한:smart 행복한:happy 슬픈:sad 젊은:young 용감한:brave 귀여운:cute "
    "무거운:heavy 가벼운:light 더러운:dirty 깨끗한:clean 따뜻한:warm 유명한:famous 이상한:strange"
)
# Transitive verbs: stem, English base / 3rd singular / past, object class.
TRANSITIVE = [
    ("먹", "eat", "eats", "ate", "food"), ("보", "see", "sees", "saw", "any"),
    ("좋아하", "like", "likes", "liked", "any"), ("만나", "meet", "meets", "met", "animate"),
    ("읽", "read", "reads", "read", "readable"), ("찾", "find", "finds", "found", "any"),
    ("만들", "make", "makes", "made", "made"), ("사", "buy", "buys", "bought", "buyable"),
    ("팔", "sell", "sells", "sold", "buyable"), ("씻", "wash", "washes", "washed", "thing"),
    ("가르치", "teach", "teaches", "taught", "animate"), ("그리", "draw", "draws", "drew", "any"),
    ("던지", "throw", "throws", "threw", "thing"), ("잡", "catch", "catches", "caught", "thing"),
    ("열", "open", "opens", "opened", "openable"), ("닫", "close", "closes", "closed", "openable"),
    ("고치", "fix", "fixes", "fixed", "thing"), ("빌리", "borrow", "borrows", "borrowed", "thing"),
    ("보내", "send", "sends", "sent", "thing"), ("받", "receive", "receives", "received", "thing"),
    ("사랑하", "love", "loves", "loved", "animate"), ("기억하", "remember", "remembers", "remembered", "any"),
    ("잊", "forget", "forgets", "forgot", "any"), ("쫓", "chase", "chases", "chased", "animate"),
    ("안", "hug", "hugs", "hugged", "animate"), ("키우", "raise", "raises", "raised", "animal"),
    ("부수", "break", "breaks", "broke", "thing"),
    ("숨기", "hide", "hides", "hid", "thing"), ("먹이", "feed", "feeds", "fed", "animal"),
]
INTRANSITIVE = [
    ("자", "sleep", "sleeps", "slept"), ("웃", "laugh", "laughs", "laughed"), ("울", "cry", "cries", "cried"),
    ("달리", "run", "runs", "ran"), ("쉬", "rest", "rests", "rested"), ("노래하", "sing", "sings", "sang"),
    ("춤추", "dance", "dances", "danced"), ("일하", "work", "works", "worked"),
    ("수영하", "swim", "swims", "swam"), ("놀", "play", "plays", "played"), ("앉", "sit", "sits", "sat"),
    ("살", "live", "lives", "lived"), ("기다리", "wait", "waits", "waited"), ("공부하", "study", "studies", "studied"),
    ("요리하", "cook", "cooks", "cooked"), ("말하", "talk", "talks", "talked"),
]
MOTION = [("가", "go", "goes", "went"), ("오", "come", "comes", "came"), ("돌아가", "return", "returns", "returned")]
ADVERBS = _pairs("빨리:quickly 천천히:slowly 조용히:quietly 조심스럽게:carefully 함께:together 열심히:hard")
# Time words: Korean tokens (joined by _), English words, tenses they allow.
TIMES = [("어제", "yesterday", ("past",)), ("오늘", "today", ("past", "present", "future")),
         ("내일", "tomorrow", ("future",)), ("매일", "every_day", ("present",)), ("지금", "now", ("present",)),
         ("아침_에", "in_the_morning", ("past", "present", "future")),
         ("저녁_에", "in_the_evening", ("past", "present", "future")),
         ("주말_에", "on_the_weekend", ("past", "present", "future"))]
# Pronouns: Korean, English subject, object, person-number (for agreement).
PRONOUNS = [("나", "I", "me", "1s"), ("너", "you", "you", "2"), ("그", "he", "him", "3s"),
            ("그녀", "she", "her", "3s"), ("우리", "we", "us", "p"), ("그들", "they", "them", "p")]
DETERMINERS = [("이", "this", "these"), ("저", "that", "those"), ("한", "a", None), ("모든", "every", None)]

_OBJECT_CLASSES = {
    "food": FOODS, "thing": THINGS + FOODS, "animate": PEOPLE + ANIMALS, "animal": ANIMALS,
    "any": PEOPLE + ANIMALS + THINGS + FOODS, "readable": [t for t in THINGS if t[1] in ("book", "letter", "map")],
    "made": THINGS + FOODS, "buyable": THINGS + FOODS,
    "openable": [t for t in THINGS if t[1] in ("window", "door", "box", "bag", "umbrella", "book")],
}


def _plural(entry: tuple[str, ...]) -> str:
    if len(entry) > 2 and entry[2] not in ("in", "at", "on"):
        return entry[2]
    word = entry[1]
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _particle(word: str, role: str) -> str:
    consonant = has_final_consonant(word)
    return {"topic": "은" if consonant else "는", "subject": "이" if consonant else "가",
            "object": "을" if consonant else "를"}[role]


class _Generator:
    """Draws one sentence pair at a time; every choice goes through one seeded Generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.forms = {v[0]: conjugate(v[0]) for v in TRANSITIVE + INTRANSITIVE + MOTION}

    def pick(self, items: list) -> tuple:
        return items[int(self.rng.integers(len(items)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # A noun phrase: (Korean tokens before the particle, English tokens, person-number for agreement).
    def noun_phrase(self, nouns: list, tense: str, allow_relative: bool) -> tuple[list[str], list[str], str]:
        entry = self.pick(nouns)
        plural = self.chance(0.25)
        adjs = [self.pick(ADJECTIVES) for _ in range(self.rng.geometric(0.6) - 1)][:3]
        relative = allow_relative and self.chance(0.22)
        ko_rel, en_rel = self.relative_clause(plural, tense) if relative else ([], [])
        det = None if relative or self.chance(0.6) else self.pick(DETERMINERS)
        if det is not None and det[2] is None and plural:
            det = None
        ko_noun = [entry[0]] + (["들"] if plural else [])
        en_noun = _plural(entry) if plural else entry[1]
        en_adjs = [a[1] for a in adjs]
        if det is None:
            en_det = "the"
        elif det[1] == "a":
            en_det = _article((en_adjs + [en_noun])[0])
        else:
            en_det = det[2] if plural else det[1]
        ko = ko_rel + ([det[0]] if det else []) + [a[0] for a in adjs] + ko_noun
        en = [en_det, *en_adjs, en_noun, *en_rel]
        return ko, en, "p" if plural else "3s"

    def relative_clause(self, head_plural: bool, tense: str) -> tuple[list[str], list[str]]:
        """Korean `[object 를] verb-ADN` before the noun; English `that verb object` after it."""
        rel_tense = self.pick(["present", "past"]) if tense != "future" else "future"
        if self.chance(0.6):
            stem, base, third, past, cls = self.pick(TRANSITIVE)
            o_ko, o_en, _ = self.noun_phrase(_OBJECT_CLASSES[cls], tense, allow_relative=False)
            ko_obj, en_obj = o_ko + [_particle(o_ko[-1], "object")], o_en
        else:
            stem, base, third, past = self.pick(INTRANSITIVE)
            ko_obj, en_obj = [], []
        adn = self.forms[stem]["adn_" + rel_tense]
        en_verb = {"past": [past], "future": ["will", base], "present": [base if head_plural else third]}[rel_tense]
        return ko_obj + [adn], ["that", *en_verb, *en_obj]

    def subject(self, tense: str) -> tuple[list[str], list[str], str]:
        if self.chance(0.3):
            ko, en, _, person = self.pick(PRONOUNS)
            return [ko, _particle(ko, "topic")], [en], person
        ko, en, person = self.noun_phrase(PEOPLE + ANIMALS, tense, allow_relative=True)
        return ko + [_particle(ko[-1], self.pick(["topic", "subject"]))], en, person

    def object(self, cls: str, tense: str) -> tuple[list[str], list[str]]:
        if cls in ("animate", "any") and self.chance(0.15):
            ko, _, en, _ = self.pick(PRONOUNS)
            return [ko, _particle(ko, "object")], [en]
        ko, en, _ = self.noun_phrase(_OBJECT_CLASSES[cls], tense, allow_relative=True)
        return ko + [_particle(ko[-1], "object")], en

    def place(self, tense: str) -> tuple[list[str], list[str]]:
        entry = self.pick(PLACES)
        adjs = [self.pick(ADJECTIVES) for _ in range(self.rng.geometric(0.7) - 1)][:2]
        return [*(a[0] for a in adjs), entry[0]], ["the", *(a[1] for a in adjs), entry[1]]

    def verb(self, stem: str, en: tuple[str, str, str], tense: str, person: str, negated: bool,
             final: bool) -> tuple[list[str], list[str]]:
        base, third, past = en
        forms = self.forms[stem]
        if not final:
            ko = [forms["connective"]]
        elif tense == "future":
            ko = [forms["adn_future"], "것이다"]
        else:
            ko = [forms[tense]]
        if negated:
            ko = ["안", *ko]
            aux = {"past": "did", "future": "will", "present": "does" if person == "3s" else "do"}[tense]
            return ko, [aux, "not", base]
        if tense == "future":
            return ko, ["will", base]
        if tense == "past":
            return ko, [past]
        return ko, [third if person == "3s" else base]

    def clause(self, tense: str, final: bool) -> tuple[list[str], list[str]]:
        """Korean: subject [place 에서] [object] [adverb] verb; English: subject verb [object] [adverb] [place]."""
        s_ko, s_en, person = self.subject(tense)
        negated = self.chance(0.12)
        kind = self.rng.random()
        ko_mid: list[str] = []
        en_after: list[str] = []
        if kind < 0.6:
            stem, base, third, past, cls = self.pick(TRANSITIVE)
            ko_mid, en_after = self.object(cls, tense)
        elif kind < 0.85:
            stem, base, third, past = self.pick(INTRANSITIVE)
        else:
            stem, base, third, past = self.pick(MOTION)
            if self.chance(0.8):
                p_ko, p_en = self.place(tense)
                ko_mid, en_after = p_ko + ["에"], ["to", *p_en]
        ko_adv, en_adv = [], []
        if self.chance(0.2):
            adv = self.pick(ADVERBS)
            ko_adv, en_adv = [adv[0]], [adv[1]]
        ko_place, en_place = [], []
        if self.chance(0.3):
            entry_ko, entry_en = self.place(tense)
            prep = next(p[2] for p in PLACES if p[1] == entry_en[-1])
            ko_place, en_place = entry_ko + ["에서"], [prep, *entry_en]
        v_ko, v_en = self.verb(stem, (base, third, past), tense, person, negated, final)
        ko = s_ko + ko_place + ko_mid + ko_adv + v_ko
        en = s_en + v_en + en_after + en_adv + en_place
        return ko, en

    def sentence(self) -> tuple[str, str]:
        tense = self.pick(["present", "past", "future"])
        n_clauses = 1 + int(self.rng.choice(3, p=[0.5, 0.33, 0.17]))
        ko: list[str] = []
        en: list[str] = []
        for k in range(n_clauses):
            c_ko, c_en = self.clause(tense, final=k == n_clauses - 1)
            ko += c_ko
            en += (["and"] if k else []) + c_en
        if self.chance(0.3):
            options = [t for t in TIMES if tense in t[2]]
            t_ko, t_en, _ = self.pick(options)
            ko = t_ko.split("_") + ko
            en = en + t_en.split("_")
        return " ".join(ko), " ".join(en)


def generate_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (Korean, English) sentence pairs from the seeded grammar."""
    if n < 0:
        raise LmbenchError(f"synthetic:ko-en: the number of pairs must be ≥ 0, got {n}")
    gen = _Generator(np.random.default_rng(seed))
    return [gen.sentence() for _ in range(n)]
