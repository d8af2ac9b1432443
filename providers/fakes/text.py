"""Plausible generated names, descriptions and small talk, from word lists and a seed.

Every fake draws from a ``random.Random`` it owns, so the same seed gives the same
histories on every machine; no external data is read.
"""

from __future__ import annotations

import random

FIRST = ("Mira", "Theo", "Ada", "Rowan", "Juno", "Felix", "Iris", "Kai", "Noor", "Silas",
         "Lena", "Oren", "Tess", "Marco", "Yuki", "Bram", "Cleo", "Dario", "Esme", "Hugo")
LAST = ("Holt", "Vance", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Reyes", "Brandt",
        "Castell", "Dunmore", "Ferris", "Quill", "Sato", "Whitlock", "Abara", "Nakamura")
ROLES = ("tavern keeper", "starship engineer", "museum guide", "retired detective",
         "botany teacher", "customer-support agent", "ship's navigator", "city librarian",
         "travel concierge", "blacksmith", "radio host", "park ranger")
TRAITS = ("never forgets a face", "speaks in short, careful sentences",
          "loves terrible puns", "knows every shortcut in town", "is secretly afraid of birds",
          "collects old maps", "answers questions with questions", "hums while thinking",
          "keeps a notebook of everyone's birthdays", "trusts nobody before lunch")
ADJECTIVES = ("cheerful", "gruff", "patient", "curious", "weary", "meticulous", "warm",
              "sardonic", "soft-spoken", "restless")
TOPICS = ("the weather", "the old lighthouse", "weekend plans", "a good book", "the harbour",
          "the night market", "training a puppy", "the best coffee in town", "the mountains",
          "an upcoming festival", "learning to cook", "a strange noise last night")
GREETINGS = ("Hi {name}!", "Hello there.", "Hey {name}, got a minute?", "Good evening.",
             "Morning, {name}.", "Hi again!")
ASKS = ("What do you think about {topic}?", "Can you tell me more about {topic}?",
        "Have you heard anything new about {topic}?", "Any advice on {topic}?",
        "Why does everyone keep talking about {topic}?", "Do you remember {topic}?")
FOLLOW = ("That makes sense.", "Really? I had no idea.", "Ha, fair enough.",
          "Okay, I'll try that.", "Interesting, go on.", "Thanks, that helps a lot.")
REPLIES = ("Ah, {topic}. Funny you should ask, I was just thinking about it.",
           "Well, people say a lot of things about {topic}, but I keep it simple.",
           "{topic}? I have a story about that, if you have the time.",
           "Honestly, {topic} is better than most folks give it credit for.",
           "I'd start small. With {topic}, patience pays off.",
           "Hello! Good to see you. What's on your mind today?",
           "You always come by at the right moment.",
           "I can't say for certain, but I have a hunch.")


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def description(rng: random.Random) -> str:
    role = rng.choice(ROLES)
    adjective = rng.choice(ADJECTIVES)
    article = "An" if adjective[0] in "aeiou" else "A"
    return f"{article} {adjective} {role} who {rng.choice(TRAITS)}."


def user_line(rng: random.Random, name: str, first: bool) -> str:
    first_name = name.split()[0]
    topic = rng.choice(TOPICS)
    if first:
        return f"{rng.choice(GREETINGS).format(name=first_name)} {rng.choice(ASKS)}".format(
            topic=topic
        )
    return rng.choice(ASKS + FOLLOW).format(topic=topic)


def character_line(rng: random.Random) -> str:
    text = rng.choice(REPLIES).format(topic=rng.choice(TOPICS))
    return text[0].upper() + text[1:]
