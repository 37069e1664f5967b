"""Writes the shipped conversation set for the retrieval suite (deterministic).

    python bench/make_conversations.py   # -> engine/src/mlsdm/engine/data/conversations.json

Why generated: CI and `mlsdm-grpc eval` need a set of long multi-session
conversations with labelled evidence turns that the project may ship; public
sets either carry no licence for redistribution or are too large. Every line
below was written for this project (no public text is copied).

Each conversation: two friends, 12 sessions a week or two apart, each session
chit-chat (greetings, small talk that shares common words with everything)
around life events. An event is told over three turns: the news, a detail in a
second message, the friend's reaction; questions ask about the news or the detail in other words
than the turn used (a paraphrase), so the lexical side alone cannot get all.
Question types: ``single`` (one evidence turn), ``temporal`` ("when ..."; the
evidence is the news turn, the answer its session's date), ``multi-hop`` (the
same kind of event told in two sessions; both turns are evidence).
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "engine/src/mlsdm/engine/data/conversations.json"
PAIRS = [("Maya", "Tom"), ("Priya", "Jonas"), ("Lena", "Omar")]
SESSIONS = 12

# kind: news turn, detail turn, detail question, temporal question, multi-hop question.
# Slots: {p} the teller, {a}/{b} the event's values.
EVENTS = {
    "pet": (
        "I finally adopted a {a} from the shelter last weekend!",
        "We called {a_it} {b}, and {a_it} already sleeps on my bed.",
        "What name did {p} give the {a}?",
        "When did {p} bring home a new pet?",
        "Which animals did {p} adopt?",
    ),
    "trip": (
        "Just got back from a trip to {a}, what a place.",
        "The best part was {b}, I could have stayed there all day.",
        "What was the highlight of {p}'s visit to {a}?",
        "When did {p} travel to {a}?",
        "Which cities has {p} visited?",
    ),
    "job": (
        "Big news: I start as a {a} at {b} on Monday.",
        "The office is small but everyone at {b} seems kind.",
        "Which company hired {p}?",
        "When did {p} get the new position?",
        "What jobs has {p} had?",
    ),
    "class": (
        "I signed up for {a} lessons at the community centre.",
        "Our teacher, {b}, is super patient with beginners like me.",
        "Who teaches {p}'s {a} course?",
        "When did {p} begin the {a} course?",
        "Which courses did {p} enrol in?",
    ),
    "race": (
        "I ran the {a} on Sunday and actually finished it!",
        "My time was {b}, better than I hoped for.",
        "How long did the {a} take {p}?",
        "When did {p} compete in the {a}?",
        "Which running events did {p} take part in?",
    ),
    "bake": (
        "Yesterday I tried making {a} for the first time.",
        "It came out a bit burnt, but {b} still asked for seconds.",
        "Who enjoyed {p}'s first attempt at {a}?",
        "When did {p} first cook {a}?",
        "What dishes did {p} try cooking?",
    ),
    "concert": (
        "We saw {a} live at {b}, it was loud and wonderful.",
        "I bought a t-shirt at the {b} merch stand, of course.",
        "Where did {p} watch {a} perform?",
        "When did {p} go to the {a} show?",
        "Which bands has {p} seen live?",
    ),
    "buy": (
        "I treated myself to a {a}, it was on sale.",
        "I paid {b} for it, a total bargain.",
        "How much did {p}'s {a} cost?",
        "When did {p} purchase the {a}?",
        "What did {p} buy for themselves?",
    ),
}
VALUES = {
    "pet": [
        ("kitten", "Pepper"),
        ("puppy", "Biscuit"),
        ("rabbit", "Clover"),
        ("parrot", "Mango"),
        ("tortoise", "Sheldon"),
        ("greyhound", "Comet"),
    ],
    "trip": [
        ("Lisbon", "the tram ride up to the castle"),
        ("Kyoto", "the bamboo forest at dawn"),
        ("Reykjavik", "the hot springs under the snow"),
        ("Marrakesh", "the spice market"),
        ("Vancouver", "kayaking around Stanley Park"),
        ("Edinburgh", "the climb up Arthur's Seat"),
    ],
    "job": [
        ("nurse", "Riverside Clinic"),
        ("data analyst", "Brightwave"),
        ("chef", "Olive and Thyme"),
        ("teacher", "Maple Grove School"),
        ("architect", "Stonebridge Studio"),
        ("pilot", "Northern Air"),
    ],
    "class": [
        ("pottery", "Ingrid"),
        ("salsa", "Mateo"),
        ("guitar", "Fiona"),
        ("watercolour", "Hugo"),
        ("Japanese", "Keiko"),
        ("climbing", "Dara"),
    ],
    "race": [
        ("city half marathon", "two hours and five minutes"),
        ("trail 10k", "58 minutes"),
        ("charity 5k", "27 minutes"),
        ("spring marathon", "four hours flat"),
        ("harbour fun run", "35 minutes"),
        ("mountain relay", "three hours"),
    ],
    "bake": [
        ("sourdough bread", "my neighbour Rosa"),
        ("lemon tart", "my little brother"),
        ("pad thai", "my roommate"),
        ("paella", "my grandma"),
        ("dumplings", "my coworker Sam"),
        ("banana cake", "my dad"),
    ],
    "concert": [
        ("The Lumineers", "the Roundhouse"),
        ("Arctic Monkeys", "the Bowl"),
        ("Norah Jones", "the Jazz Cafe"),
        ("Coldplay", "Wembley"),
        ("Khruangbin", "the Fillmore"),
        ("Florence and the Machine", "the Apollo"),
    ],
    "buy": [
        ("road bike", "300 dollars"),
        ("espresso machine", "120 dollars"),
        ("standing desk", "180 dollars"),
        ("camera lens", "250 dollars"),
        ("winter coat", "90 dollars"),
        ("telescope", "210 dollars"),
    ],
}
PRONOUN = {
    "kitten": "her",
    "puppy": "him",
    "rabbit": "her",
    "parrot": "him",
    "tortoise": "him",
    "greyhound": "her",
}
REACTIONS = [
    "No way, that is amazing! Tell me more.",
    "Wow, how did that go?",
    "That sounds like so much fun!",
    "Oh nice, I am so happy for you!",
    "Really? That is great news.",
    "Haha, I love that. How was it?",
]
SMALL_TALK = [
    "Hey! How has your week been?",
    "Pretty good, work has been busy as always.",
    "Same here, I barely had time to relax.",
    "Did you do anything fun lately?",
    "Not much, mostly stayed home and watched a show.",
    "The weather has been so nice lately.",
    "I know, I went for a long walk yesterday.",
    "How is your family doing?",
    "They are good, thanks for asking!",
    "I have been trying to sleep more.",
    "Let's catch up again soon!",
    "Talk to you later, take care!",
    "Sounds good, have a great evening!",
    "I am so tired today, long day at work.",
    "Coffee is the only thing keeping me going, haha.",
    "Any plans for the weekend?",
    "Maybe, I will see how I feel.",
    "That reminds me, I need to call my mom.",
]


def _conversation(rng: random.Random, pair: tuple[str, str], start: datetime) -> dict[str, object]:
    kinds = {name: rng.sample(sorted(EVENTS), 4) for name in pair}
    pools = {kind: rng.sample(VALUES[kind], len(VALUES[kind])) for kind in EVENTS}
    told: dict[tuple[str, str], list[str]] = {}
    turns: list[dict[str, object]] = []
    questions: list[dict[str, object]] = []
    date = start
    for session in range(1, SESSIONS + 1):
        date += timedelta(days=rng.randint(5, 15), hours=rng.randint(0, 6))
        stamp = date.isoformat()

        def say(speaker: str, text: str, _s: int = session, _t: str = stamp) -> str:
            turn_id = f"D{_s}:{sum(1 for t in turns if t['session'] == _s) + 1}"
            turns.append(
                {"id": turn_id, "speaker": speaker, "session": _s, "time": _t, "text": text}
            )
            return turn_id

        opener = rng.randrange(2)
        for line in rng.sample(SMALL_TALK[:11], 3):
            say(pair[opener], line)
            opener = 1 - opener
        for teller in rng.sample(pair, 2):
            kind = kinds[teller][(session - 1) % 4]
            a, b = pools[kind].pop()
            fill = {"p": teller, "a": a, "b": b, "a_it": PRONOUN.get(a, "it")}
            news = say(teller, EVENTS[kind][0].format(**fill))
            detail = say(teller, EVENTS[kind][1].format(**fill))
            say(pair[1 - pair.index(teller)], rng.choice(REACTIONS))
            for line in rng.sample(SMALL_TALK, 2):
                say(rng.choice(pair), line)
            questions.append(
                {"question": EVENTS[kind][2].format(**fill), "evidence": [detail], "type": "single"}
            )
            questions.append(
                {
                    "question": EVENTS[kind][3].format(**fill),
                    "evidence": [news],
                    "type": "temporal",
                    "answer": stamp[:10],
                }
            )
            told.setdefault((teller, kind), []).append(news)
        say(pair[0], rng.choice(SMALL_TALK[10:13]))
    for (teller, kind), news_ids in sorted(told.items()):
        if len(news_ids) >= 2:
            questions.append(
                {
                    "question": EVENTS[kind][4].format(p=teller),
                    "evidence": news_ids,
                    "type": "multi-hop",
                }
            )
    return {"name": f"{pair[0]} and {pair[1]}", "turns": turns, "questions": questions}


def build(seed: int = 28) -> dict[str, object]:
    rng = random.Random(seed)
    convs = [
        _conversation(rng, pair, datetime(2024, 1 + 3 * i, 3, 18)) for i, pair in enumerate(PAIRS)
    ]
    return {
        "source": "written for mlsdm-grpc by bench/make_conversations.py (project licence)",
        "conversations": convs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="check the shipped file, write nothing")
    text = json.dumps(build(), indent=1) + "\n"
    if ap.parse_args().quick:
        same = OUT.read_text("utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'differs from the generator'}")
        raise SystemExit(0 if same else 1)
    OUT.write_text(text, encoding="utf-8")
    print(OUT)


if __name__ == "__main__":
    main()
