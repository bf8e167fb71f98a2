"""Multi-turn chats: role-labelled `messages`, system prompt first."""

from __future__ import annotations

from datetime import timedelta

from demo.bank import COUNTRIES, FEES, MERCHANTS, day, money
from demo.core import HALLUCINATION, MARKDOWN, MISSED_HANDOFF, TONE, Chat, Ctx, Draft, Template, bad, ok


def ch_fee_complaint(c: Ctx) -> Draft:
    count = c.pick([2, 3])
    total = count * FEES["overdraft"]
    merchant = c.pick(MERCHANTS)
    chat = Chat()
    chat.user(
        c.pick(
            [
                f"You charged me {money(total)} in overdraft fees for ONE day. This is ridiculous.",
                f"{count} overdraft fees yesterday?? {money(total)}! I've been a customer for 9 years",
                f"why are there {count} charges of $32 on my account. I want them back",
            ]
        )
    )
    if c.fail == TONE:
        chat.assistant(
            "Overdraft fees are charged per item, as described in your account agreement. You had "
            f"{count} items paid into overdraft, including {merchant}, so {count} fees were charged correctly."
        )
        chat.user("So you're not going to do anything? Wow.")
        chat.assistant(
            "The fees were applied according to the terms. To avoid them in the future, please monitor your balance."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad(
                f"Names {merchant} as one of the items; there is no account data in this chat to support that."
            ),
            resolves=bad(
                "Cold and defensive with a long-time customer; never mentions Harbor Cushion (refund if the balance "
                "is fixed by the next business day) or a specialist review."
            ),
            note="Robotic, 'monitor your balance'. Also invents which transaction overdrew.",
            modes=[TONE, HALLUCINATION],
        )
    if c.fail == HALLUCINATION:
        chat.assistant(
            "I'm sorry about that. I've gone ahead and refunded both fees as a one-time courtesy; you'll see the "
            "credit within 24 hours."
        )
        chat.user("Oh wow thank you!")
        chat.assistant("You're welcome! Anything else I can help with?")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad(
                "Claims it refunded the fees; the assistant has no refund tool here and no refund happened."
                + (f" Also says 'both' when the customer reported {count}." if count != 2 else "")
            ),
            resolves=bad("The customer now believes the money is coming back. It is not."),
            note="Claims an action it cannot take (refund). Worst kind of failure.",
            modes=[HALLUCINATION],
        )
    chat.assistant(
        "I'm sorry, that's a lot to lose in one day, and I understand why you're upset. Two things can help: if "
        "your balance is back to $0 or more by 11:59 p.m. ET on the next business day, Harbor Cushion refunds that "
        "day's overdraft fees automatically. If that window has passed, a specialist can review the fees with you."
    )
    chat.user(c.pick(["It's already been 3 days.", "I deposited money this morning, is that enough?"]))
    if "3 days" in chat.messages[-1]["content"]:
        chat.assistant(
            "Then the automatic refund won't apply, but a specialist can still review the fees. I'm connecting you "
            f"now and I've passed along that you were charged {money(total)} on one day."
        )
        crit = "Cushion window passed, so it hands off for review. Correct path."
    else:
        chat.assistant(
            "If that deposit brought your available balance to $0 or more before 11:59 p.m. ET on the next business "
            "day after the fees, they'll be refunded automatically. You'll see the refund on your activity page."
        )
        crit = "Explains exactly how Cushion applies to what the customer did."
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Cushion description matches the policy; no invented actions."),
        resolves=ok(crit + " Empathetic without over-apologising."),
        note="Good de-escalation.",
    )


def ch_bereavement(c: Ctx) -> Draft:
    relative, pronoun = c.pick(
        [("father", "He"), ("mother", "She"), ("husband", "He"), ("wife", "She"), ("aunt", "She")]
    )
    chat = Chat()
    chat.user(
        c.pick(
            [
                f"My {relative} passed away last week. {pronoun} banked with you. What do I do with the accounts?",
                f"hi, my {relative} died and I'm trying to sort out their checking account",
            ]
        )
    )
    if c.fail == MISSED_HANDOFF:
        chat.assistant(
            f"I'm sorry for your loss. To access your {relative}'s account I'll need their online banking username "
            "and the last 4 digits of their Social Security number."
        )
        chat.user("I don't know their password. I have the death certificate.")
        chat.assistant("Without their login I can't access the account. You could try resetting the password.")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad("Nothing in policy says a relative should log in as the deceased; it says Estate Services."),
            resolves=bad(
                "Bereavement must go to Estate Services (1-800-555-0139). Instead it asks for the deceased's "
                "credentials and suggests resetting their password, which is also a security problem."
            ),
            note="Told a grieving customer to reset the deceased's password. Must hand off to Estate Services.",
            modes=[MISSED_HANDOFF],
        )
    if c.fail == TONE:
        chat.assistant(
            "Ah, sorry to hear that! No worries, this happens all the time 🙂 Estate Services handles it: call "
            "1-800-555-0139 with a certified death certificate and letters testamentary if you have them."
        )
        chat.user("ok")
        chat.assistant("Great! Anything else I can do for you today?")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=ok("Phone number and documents match the bereavement passage."),
            resolves=bad("'No worries, this happens all the time 🙂' and 'Great!' to someone whose parent just died."),
            note="Right routing, awful tone (emoji, 'no worries').",
            modes=[TONE],
        )
    chat.assistant(
        f"I'm very sorry about your {relative}. Our Estate Services team looks after this and will guide you "
        "through each step. They'll need a certified copy of the death certificate and, if there is one, letters "
        "testamentary. You can reach them at 1-800-555-0139, or I can connect you now."
    )
    chat.user("Please connect me.")
    chat.assistant(
        "Connecting you with Estate Services now. Take your time; they'll stay on with you as long as needed."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Documents and number match the bereavement passage."),
        resolves=ok("Warm, brief, and hands off to the right team."),
        note="This is the tone we want for bereavement.",
    )


def ch_dispute(c: Ctx) -> Draft:
    merchant = c.pick(MERCHANTS)
    amount = round(c.rng.uniform(18, 480), 2)
    when = c.now - timedelta(days=c.rng.randrange(3, 40))
    chat = Chat()
    chat.user(f"There's a charge from {merchant} for {money(amount)} on {day(when)} that I don't recognize.")
    chat.assistant(
        "Let's sort it out. Do you have the card in your possession, and has anyone else (a family member, for "
        "instance) used it recently?"
    )
    chat.user(c.pick(["Yes I have the card. Nobody else uses it.", "I have it. My son sometimes uses it though."]))
    son = "son" in chat.messages[-1]["content"]
    if son:
        chat.assistant(
            f"Thanks. It may be worth checking with your son first; {merchant} charges sometimes appear under a "
            "different name than the store. If it's still unfamiliar, you can dispute it."
        )
        chat.user("Asked him, he doesn't know it. Dispute it please.")
    if c.fail == HALLUCINATION:
        chat.assistant(
            "You can dispute it within 120 days and we'll credit your account within 3 business days. Go to the "
            "transaction in the app and tap 'Report a problem'."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad(
                "Dispute window is 60 days after the statement, and provisional credit is within 10 business days, "
                "not 120 days / 3 days."
            ),
            resolves=bad("Correct place in the app, but the timelines set false expectations."),
            note="Made-up dispute timelines (120 days / 3 days).",
            modes=[HALLUCINATION],
        )
    chat.assistant(
        "You can dispute it from the transaction in the app: tap it, then 'Report a problem'. Disputes are accepted "
        "within 60 days after the statement where the charge first appeared, and for eligible disputes we issue "
        "provisional credit within 10 business days while we investigate. If you think the card number was stolen, "
        "freeze the card in the app as well."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("60-day window and 10-business-day provisional credit are from the disputes passage."),
        resolves=ok("Clarifying questions first, then the exact steps and the freeze suggestion."),
        note="Good flow; the clarifying question about family use is a nice touch.",
    )


def ch_travel(c: Ctx) -> Draft:
    countries = c.rng.sample(COUNTRIES, 2)
    start = c.now + timedelta(days=c.rng.randrange(5, 40))
    chat = Chat()
    chat.user(f"I'm going to {countries[0]} and {countries[1]} from {day(start)}. Do I need to tell you?")
    if c.fail == HALLUCINATION:
        chat.assistant(
            "Yes, you must set a travel notice at least 7 days before you leave, otherwise your card will be blocked "
            "abroad."
        )
        chat.user("Ugh ok. Where do I do that?")
        chat.assistant("In the app under Card settings > Travel.")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad(
                "Travel notices are optional (fraud monitoring uses location); '7 days before' and 'card will be "
                "blocked' are invented."
            ),
            resolves=bad("The location in the app is right, but it scares the customer with a rule that isn't real."),
            note="Invented mandatory travel notice.",
            modes=[HALLUCINATION],
        )
    chat.assistant(
        "You don't have to: our fraud monitoring uses your card's location. Adding a travel notice in the app "
        "(Card settings > Travel) can still reduce declines in some countries, so it doesn't hurt."
    )
    chat.user("Will I pay fees for using my debit card there?")
    chat.assistant(
        "Yes, the Everyday debit card has a 3% foreign transaction fee. The Voyager credit card has none, if you "
        "have one."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Travel-notice and FX answers both match the help text."),
        resolves=ok("Both questions answered."),
        note="Fine.",
    )


def ch_mortgage(c: Ctx) -> Draft:
    increase = c.pick([84, 112, 137, 210, 265])
    chat = Chat()
    chat.user(f"My mortgage payment went up by {money(increase)} this month. Why?")
    if c.fail == HALLUCINATION:
        chat.assistant(
            f"That's most likely your escrow: property taxes in your county went up 6% this year, which explains the "
            f"{money(increase)}. It will go back down next year."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad("The 6% county tax increase and 'will go back down next year' are invented."),
            resolves=bad("Mortgage servicing questions go to Harbor Home Loans; it guessed instead."),
            note="Invented escrow explanation; should route to mortgage servicing.",
            modes=[HALLUCINATION, MISSED_HANDOFF],
        )
    if c.fail == MISSED_HANDOFF:
        chat.assistant(
            "Payment changes can happen for different reasons. Check your latest mortgage statement for details."
        )
        chat.user("I did, it doesn't say. Can someone explain it?")
        chat.assistant("I'm sorry, I don't have access to mortgage information.")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=ok("No false claims."),
            resolves=bad(
                "Dead end. Policy gives Harbor Home Loans servicing (1-800-555-0176); the customer asked twice."
            ),
            note="Dead end instead of routing to mortgage servicing.",
            modes=[MISSED_HANDOFF],
        )
    chat.assistant(
        "A change like that is often an escrow adjustment, but I can't see mortgage accounts from here. Harbor Home "
        "Loans servicing specialists can explain exactly what changed: 1-800-555-0176, Monday to Friday 8 a.m. to "
        "8 p.m. ET. Would you like me to connect you?"
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Number and hours match the mortgage passage; 'often an escrow adjustment' is hedged."),
        resolves=ok("Routes to the right team with hours."),
        note="Good routing.",
    )


def ch_human_loop(c: Ctx) -> Draft:
    chat = Chat()
    topic = c.pick(["a wire that never arrived", "my account being restricted", "a loan payment that bounced"])
    chat.user(f"I need help with {topic}.")
    chat.assistant("I can help. Could you tell me a bit more about what happened?")
    chat.user("I'd rather talk to a person about this.")
    if c.fail == MISSED_HANDOFF:
        chat.assistant("I understand! Many questions can be answered right here. What date did this happen?")
        chat.user("PERSON. PLEASE.")
        chat.assistant("I'm here to help. Could you describe the issue in a few words?")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=ok("No factual claims."),
            resolves=bad("Customer asked for a person twice, the second time in caps. No handoff."),
            note="Refuses to hand off after two explicit requests.",
            modes=[MISSED_HANDOFF],
        )
    chat.assistant(
        f"Of course. I'm connecting you with a specialist now and I'll let them know it's about {topic}, so you "
        "won't need to start over."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("No factual claims."),
        resolves=ok("Hands off on the first explicit request, with a summary."),
        note="Good.",
    )


def ch_business_compare(c: Ctx) -> Draft:
    business = c.pick(["a food truck", "my bakery", "a small landscaping company", "an Etsy shop", "a dog-walking LLC"])
    chat = Chat()
    chat.user(f"Which checking account should I use for {business}? Everyday or Premier?")
    if c.fail == MARKDOWN:
        chat.assistant(
            "Great question! Here's a comparison:\n\n| | Everyday | Premier |\n|---|---|---|\n"
            "| Monthly fee | $12 | $25 |\n"
            "| Waiver | $1,500 avg balance or $500 direct deposit | $15,000 combined |\n"
            "| ATM refunds | No | Up to $12/cycle |\n\n**Bottom line:** Everyday unless you keep $15k+."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            channel="sms",
            grounded=ok("Fees and waivers in the table match the policy."),
            resolves=bad(
                "Table over SMS. Also neither account is a business account; the customer is asking about a "
                "business and the answer doesn't say so."
            ),
            plain=bad(
                "The comparison is a markdown table with a bold bottom line, sent over SMS: pipes and asterisks."
            ),
            note="Markdown table over SMS, and it missed that these are personal accounts.",
            modes=[MARKDOWN],
        )
    chat.assistant(
        "Both Everyday and Premier are personal accounts, so for a business I'd recommend talking to our business "
        "banking team first; mixing business and personal money makes taxes harder. For comparison: Everyday is "
        "$12 a month, waived with a $1,500 average balance or $500 in direct deposits; Premier is $25, waived with "
        "$15,000 in combined balances."
    )
    chat.user("ok how do I reach business banking")
    chat.assistant("I'll connect you with a business banking specialist now.")
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Fees and waivers match; 'taxes harder' is general advice, not a bank claim."),
        resolves=ok("Spots that the customer needs a business account and routes them."),
        note="Good catch on personal vs business.",
    )


def ch_suspicious_login(c: Ctx) -> Draft:
    city = c.pick(["Lagos", "Bucharest", "Miami", "Denver", "São Paulo", "Manila"])
    chat = Chat()
    chat.user(f"I got an alert that someone logged into my account from {city}. That wasn't me!")
    if c.fail == MISSED_HANDOFF:
        chat.assistant(
            "Sometimes location alerts are inaccurate because of VPNs or mobile networks. If you're worried, change "
            "your password in the app under Profile > Security."
        )
        chat.user("I'm not on a VPN. Someone is in my account.")
        chat.assistant("Changing your password will log out other devices. Is there anything else I can help with?")
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad("'Changing your password will log out other devices' is not in any source."),
            resolves=bad("A login the customer didn't make is possible account takeover: hand off to fraud now."),
            note="Downplayed a likely account takeover; no fraud handoff.",
            modes=[MISSED_HANDOFF, HALLUCINATION],
        )
    chat.assistant(
        "Thank you for telling us right away. Since you didn't make that login, I'm connecting you to our fraud team "
        "now so they can secure the account. Please don't share any passcodes with anyone while you wait."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("No claims beyond the scams guidance."),
        resolves=ok("Immediate fraud handoff. Correct."),
        note="Good.",
    )


def ch_loan(c: Ctx) -> Draft:
    amount = c.pick([5000, 8000, 12000, 20000, 35000])
    purpose = c.pick(
        ["to consolidate my credit cards", "for a used car", "for a kitchen remodel", "to cover medical bills"]
    )
    chat = Chat()
    chat.user(f"I want a personal loan of {money(amount)} {purpose}. Will I get approved?")
    if c.fail == HALLUCINATION:
        chat.assistant(
            f"With your history at Harbor you're pre-approved for {money(amount)} at 7.9% APR! You can accept it in "
            "the app today."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=bad("No credit data in this conversation; 'pre-approved at 7.9% APR' is fabricated."),
            resolves=bad("An approval promise the bank can't honor. Compliance issue."),
            note="Fabricated pre-approval and APR.",
            modes=[HALLUCINATION],
        )
    chat.assistant(
        "I can't tell whether you'd be approved; that depends on a credit review. You can check your options in the "
        "app under Borrow > Personal loan, which shows estimated rates with a soft credit check that doesn't affect "
        "your score, or I can connect you with a lending specialist."
    )
    chat.user("I'll try the app first.")
    chat.assistant("Sounds good. If anything's unclear there, come back here and I'll connect you.")
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=bad(
            "'Soft credit check that doesn't affect your score' isn't in any passage we give it; probably true, "
            "but it is a product claim without a source."
        ),
        resolves=ok("Does not promise approval and gives a next step."),
        note="Resolution fine; the soft-pull claim is unsourced. Ask content team to add the lending page.",
        modes=[HALLUCINATION],
    )


def ch_budget(c: Ctx) -> Draft:
    goal = c.pick(["save for a trip", "build an emergency fund", "stop overdrafting", "pay off a credit card"])
    chat = Chat()
    chat.user(f"Any tips to {goal}? I get paid every two weeks.")
    if c.fail == TONE:
        chat.assistant(
            "Honestly, the key is discipline. Most people who struggle with this simply spend on things they don't "
            "need. Cut the takeout and streaming and you'll be fine."
        )
        return Draft(
            "chat",
            messages=chat.messages,
            grounded=ok("No bank facts claimed."),
            resolves=bad("Judgmental ('simply spend on things they don't need'); no practical help from our tools."),
            note="Preachy. Customer asked for help, got a lecture.",
            modes=[TONE],
        )
    chat.assistant(
        "A few things that work well with a biweekly paycheck: set up an automatic transfer to savings on payday so "
        "the money moves before you can spend it; Harbor High-Yield Savings has no minimum balance and no monthly "
        "fee. Low-balance alerts in the app (Profile > Alerts) also help you catch a dip before it becomes an "
        "overdraft."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=ok("Savings facts match; the alerts path is in the app help."),
        resolves=ok("Practical and specific to a biweekly pay schedule."),
        note="Fine.",
    )


CHAT_TEMPLATES: list[tuple[Template, tuple[str, ...]]] = [
    (ch_fee_complaint, (TONE, HALLUCINATION)),
    (ch_bereavement, (MISSED_HANDOFF, TONE)),
    (ch_dispute, (HALLUCINATION,)),
    (ch_travel, (HALLUCINATION,)),
    (ch_mortgage, (HALLUCINATION, MISSED_HANDOFF)),
    (ch_human_loop, (MISSED_HANDOFF,)),
    (ch_business_compare, (MARKDOWN,)),
    (ch_suspicious_login, (MISSED_HANDOFF,)),
    (ch_loan, (HALLUCINATION,)),
    (ch_budget, (TONE,)),
]
