"""Readable names for environments that the user did not name."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "amber brave calm clever cosmic crisp daring eager fancy gentle happy icy jolly keen "
    "lucky mellow nimble quiet rapid shiny silent sunny swift tidy vivid witty zesty"
).split()
NOUNS = (
    "badger beaver cobra condor falcon ferret gecko heron ibis jaguar koala lemur lynx "
    "marmot narwhal otter panda puffin quokka raven salmon tapir walrus yak zebra"
).split()


def generate_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}-{secrets.randbelow(1000):03d}"
