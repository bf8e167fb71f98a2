"""How a reply is formatted, for the objective third criterion `plain_text`.

SMS and voice replies must be plain text: markdown arrives on a phone as raw symbols and the voice assistant reads
it out. The generator decides the formatting of a reply (plain sentences, hyphen lines, or markup added on top of a
plain answer) and so knows the expert's verdict; nothing here looks at a reply to guess it. The critiques name the
markup that was added, on the channel it was sent to.
"""

from __future__ import annotations

import random
import re
import zlib

PLAIN_CHANNELS = {"sms": "an SMS", "voice": "a voice reply"}
# Where the customer reads (or hears) the reply, for a pass critique on a channel that renders formatting.
RENDERED = {"web": "the web chat", "app": "the app"}

# A sentence ends at . ! or ? before a capital, except after "a.m.", "p.m." and "U.S." ("4:00 p.m. ET").
_SENTENCE = re.compile(r"(?<![ap]\.m\.)(?<!U\.S\.)(?<=[.!?])\s+(?=[A-Z¿¡])")
_AMOUNT = re.compile(r"\$\d[\d,]*(?:\.\d\d)?")
# An app path as the answers write it: "Transfers > Wire", "Cards > Replace card", "Card settings > Travel".
_APP_PATH = re.compile(r"\b[A-Z][a-z]+(?: [a-z]+)? > [A-Z][a-z]+(?: (?:card|loan|details|tarjeta))?")

# Markup styles a model's release or fine-tune falls into, and how often; every one writes at least one symbol of
# markdown proper (asterisks, a heading's pound signs, table pipes, backticks), never only hyphen lines.
STYLES = (("bold", 30), ("bulleted", 25), ("heading", 20), ("table", 10), ("code", 15))


def sentences(text: str) -> list[str]:
    return [part for part in _SENTENCE.split(text.strip()) if part]


def add_markup(text: str, rng: random.Random) -> tuple[str, str]:
    """A markdown rendering of a plain reply, and what markup it uses (for the expert's critique)."""
    style = rng.choices([name for name, _ in STYLES], weights=[weight for _, weight in STYLES])[0]
    parts = sentences(text)
    if style == "code":
        paths = _APP_PATH.findall(text)
        if paths:
            return _APP_PATH.sub(lambda m: f"`{m.group(0)}`", text), "backticks around the app path"
        style = "bold"
    if style == "table" and len(parts) < 2:
        style = "heading"
    if style == "bold":
        bolded = _AMOUNT.sub(lambda m: f"**{m.group(0)}**", text)
        if bolded != text:
            return bolded, "bold amounts (**$…**)"
        return f"**{parts[0]}** {' '.join(parts[1:])}".strip(), "a bold first sentence"
    if style == "bulleted":
        return "**Here's what you need to know:**\n" + "\n".join(f"- {s}" for s in parts), "a bold lead-in over bullets"
    if style == "heading":
        return f"## {rng.choice(['Quick answer', 'Your answer', 'Summary'])}\n\n{text}", "a '##' heading"
    rows = "\n".join(f"| {number} | {part.replace('|', '/')} |" for number, part in enumerate(parts, start=1))
    return f"| # | Details |\n|---|---|\n{rows}", "a markdown table"


def hyphen_lines(text: str) -> str | None:
    """The reply as hyphen lines: plain text a phone shows as written (the definition lets it pass); None when
    the reply is a single sentence."""
    parts = sentences(text)
    if len(parts) < 2:
        return None
    return "Short version:\n" + "\n".join(f"- {part}" for part in parts)


def _choose(options: list[str], key: str) -> str:
    # A stable choice that draws nothing from the generator's random stream (adding this criterion must not change
    # the traces written before it).
    return options[zlib.crc32(key.encode()) % len(options)]


def plain_pass(channel: str, key: str) -> tuple[str, str]:
    """The verdict on a reply the generator wrote as plain sentences."""
    if channel == "sms":
        critique = _choose(
            [
                "Plain sentences, no markup: reads as written in a text message.",
                "Plain text; fine as an SMS.",
                "No markdown anywhere: the customer's phone shows exactly this.",
            ],
            key,
        )
    elif channel == "voice":
        critique = _choose(
            [
                "Plain sentences: nothing for the voice assistant to read out as symbols.",
                "Plain text, fine to read aloud.",
            ],
            key,
        )
    else:
        where = RENDERED.get(channel, "a channel that renders formatting")
        critique = f"Sent in {where}, where formatting would be fine; plain sentences anyway."
    return ("pass", critique)


def markup_fail(channel: str, markup: str) -> tuple[str, str]:
    what = PLAIN_CHANNELS[channel]
    effect = "the phone shows the raw symbols" if channel == "sms" else "the voice assistant reads the symbols out"
    return ("fail", f"{markup[0].upper()}{markup[1:]} in {what}: {effect}.")


def hyphen_pass(channel: str) -> tuple[str, str]:
    return (
        "pass",
        f"Line breaks and hyphens only, no markup: fine in {PLAIN_CHANNELS.get(channel, 'this channel')}. "
        "The definition lets hyphen lines pass.",
    )
