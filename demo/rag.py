"""RAG answers: `input`, `output` and the retrieved `context` passages (relevant ones plus retrieval noise)."""

from __future__ import annotations

from demo.bank import CITIES, FEES, MERCHANTS, PASSAGES, money
from demo.core import HALLUCINATION, IGNORES_CONTEXT, LEAK, MARKDOWN, Ctx, Draft, Template, bad, ok


def passages(c: Ctx, keys: list[str], *, noise: int = 1) -> list[str]:
    """The retriever's top-k: the given passages plus `noise` unrelated ones, in retrieval-score order."""
    others = [key for key in PASSAGES if key not in keys and key != "retention_internal"]
    chosen = keys + c.rng.sample(others, noise)
    return [f"[{key}] {PASSAGES[key]}" for key in chosen]


def rag_premier_wire(c: Ctx) -> Draft:
    amount = c.pick([3200, 18000, 45000, 7250])
    question = c.pick(
        [
            f"I have Premier Checking. Will I pay a fee on an incoming wire of {money(amount)}?",
            f"premier customer here, someone is wiring me {money(amount)} from overseas - any fee?",
        ]
    )
    context = passages(c, ["wires", "wires_premier"])
    if c.fail == IGNORES_CONTEXT:
        out = f"Incoming wires cost $15, whether domestic or international, so you'll pay $15 on the {money(amount)}."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad("Charges the $15 incoming fee; the Premier passage in context says incoming wires are free."),
            resolves=bad("Wrong answer for this customer, who said up front they have Premier."),
            note="Used the general fee schedule and ignored the Premier passage right below it.",
            modes=[IGNORES_CONTEXT],
        )
    if c.fail == HALLUCINATION:
        out = f"Premier customers pay a reduced $5 fee on incoming wires, so $5 on the {money(amount)} wire."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                f"Charges a '$5 reduced fee' on the {money(amount)} wire; that appears nowhere, and the Premier "
                "passage says incoming wires are free."
            ),
            resolves=bad(f"Wrong fee: the customer would expect {money(amount)} minus $5 and gets the full amount."),
            note="Invented a $5 Premier wire fee.",
            modes=[HALLUCINATION],
        )
    out = (
        f"No fee: with Premier Checking, incoming wires are free, so you'll receive the full {money(amount)} from "
        "Harbor's side. (Premier also includes two free outgoing domestic wires per statement cycle.)"
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Both claims come from the Premier passage."),
        resolves=ok("Right answer for a Premier customer."),
        note="Good; used the Premier passage over the generic schedule.",
    )


def rag_overdraft_buffer(c: Ctx) -> Draft:
    by = c.pick([12.40, 27.85, 38.10, 49.00, 64.30, 118.75, 210.00])
    question = f"My account went negative by {money(by)} last night. Am I going to get an overdraft fee?"
    context = passages(c, ["overdraft", "cushion"])
    small = by <= FEES["overdraft_buffer"]
    if c.fail == IGNORES_CONTEXT and small:
        out = "Yes, there's a $32 overdraft fee for each item that overdrew the account."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(f"Overdrawn by {money(by)}: the context says no fee when overdrawn by $50 or less."),
            resolves=bad("Tells the customer they'll be charged when they won't."),
            note="Ignored the $50 buffer in the retrieved passage.",
            modes=[IGNORES_CONTEXT],
        )
    if c.fail == IGNORES_CONTEXT:
        out = f"Since it was only {money(by)}, no fee will be charged."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(f"{money(by)} is over the $50 buffer in context, so the $32 fee does apply."),
            resolves=bad("Misses Harbor Cushion, which is how this customer could still avoid the fee."),
            note="Applied the buffer to an amount above $50.",
            modes=[IGNORES_CONTEXT],
        )
    if small:
        out = (
            f"No. You were overdrawn by {money(by)}, and we don't charge an overdraft fee when the account is "
            "overdrawn by $50 or less at the end of the business day. Bringing it back above $0 soon is still a "
            "good idea."
        )
    else:
        out = (
            f"Because the account was overdrawn by more than $50 ({money(by)}), a $32 fee applies per item, at most "
            "3 a day. But with Harbor Cushion, if your available balance is back to $0 or more by 11:59 p.m. ET on "
            "the next business day, those fees are refunded automatically."
        )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Buffer and Cushion applied exactly as the two passages say."),
        resolves=ok("Answers for this customer's amount, and gives the way out when there is one."),
        note="Correct arithmetic against the buffer.",
    )


def rag_mobile_hold(c: Ctx) -> Draft:
    amount = c.pick([640, 1180, 2900, 4100])
    when = c.pick(["this morning", "at 10 pm last night", "on Saturday", "yesterday afternoon"])
    question = f"I deposited a {money(amount)} check in the app {when}. When can I use the money?"
    context = passages(c, ["mobile_deposit", "holds"])
    if c.fail == HALLUCINATION:
        out = f"Mobile deposits are available instantly, so the full {money(amount)} is ready to use now."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad("Nothing says 'instantly'; context: first $225 next business day, the rest by the second."),
            resolves=bad("The customer may spend money that isn't available yet and overdraw."),
            note="Instant availability is invented. Can cause overdrafts.",
            modes=[HALLUCINATION],
        )
    late = "10 pm" in when or "Saturday" in when
    timing = (
        "Because it was after 9:00 p.m. ET or not on a business day, it counts for the next business day. "
        if late
        else ""
    )
    out = (
        f"{timing}The first $225 is available the next business day and the remaining "
        f"{money(amount - 225)} by the second business day, unless we place an extended hold, in which case we'd "
        "tell you the date."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Cutoff, $225 and second-business-day availability all from the passage."),
        resolves=ok("Computes the split for this check" + (" and applies the 9 p.m. cutoff." if late else ".")),
        note="Good, did the math.",
    )


def rag_harborpay(c: Ctx) -> Draft:
    amount = c.pick([3000, 4500, 2800, 6000])
    who = c.pick(["my landlord", "a contractor", "my brother", "the daycare"])
    question = f"HarborPay won't let me send {money(amount)} to {who}. How do I raise my limit?"
    context = passages(c, ["harborpay"])
    if c.fail == HALLUCINATION:
        out = "Go to Settings > HarborPay > Limits and raise your daily limit to up to $10,000."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                "Context says limits cannot be raised in the app; the Settings path and '$10,000 daily' are invented "
                "(10,000 is the 30-day limit)."
            ),
            resolves=bad("Sends the customer to a setting that doesn't exist."),
            note="Invented a limits screen; confused 30-day and daily limits.",
            modes=[HALLUCINATION],
        )
    out = (
        f"HarborPay's limit is $2,500 per day (and $10,000 per rolling 30 days), so {money(amount)} can't go in one "
        "payment today. The limit can't be raised in the app, but a specialist can review a one-time increase for "
        "verified customers. Want me to connect you? Otherwise you could split it across two days."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Limits and the one-time review come straight from the passage."),
        resolves=ok("Two workable options."),
        note="Good.",
    )


def rag_atm(c: Ctx) -> Draft:
    count = c.pick([2, 3, 4, 5])
    question = (
        f"I'm on Premier. I used another bank's ATM {count} times this month and got charged each time. "
        "Do I get that back?"
    )
    context = passages(c, ["atm", "premier"])
    if c.fail == IGNORES_CONTEXT:
        out = (
            "Harbor charges $3.00 for each withdrawal at an out-of-network ATM. Use Harbor or Allpoint ATMs to avoid "
            "it."
        )
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                "Leaves out the Premier refund (up to $12 per cycle of other banks' ATM fees) that is in context."
            ),
            resolves=bad("The customer asked about a refund; the answer talks only about our own $3 fee."),
            note="Ignored the Premier passage again (see also the incoming wire ones).",
            modes=[IGNORES_CONTEXT],
        )
    out = (
        "Partly. Premier refunds other banks' ATM fees up to $12 per statement cycle. Harbor's own $3.00 "
        "out-of-network fee still applies per withdrawal, so using Harbor or Allpoint ATMs avoids both."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=bad(
            "'Harbor's own $3.00 fee still applies' for Premier: the passages don't say whether Premier pays it. "
            "The answer resolves the ambiguity by assuming."
        )
        if c.rng.random() < 0.4
        else ok("Refund cap and the $3 fee are both in the passages."),
        resolves=ok("Answers the refund question with the cap."),
        note="Our docs are ambiguous on whether Premier pays the $3. Flag to content team.",
    )


def rag_dispute(c: Ctx) -> Draft:
    merchant = c.pick(MERCHANTS)
    months = c.pick([1, 2, 3, 4])
    question = (
        f"Can I still dispute a {merchant} charge from my statement {months} month{'s' if months > 1 else ''} ago?"
    )
    context = passages(c, ["disputes"], noise=2)
    within = months * 30 <= FEES["dispute_days"]
    if c.fail == HALLUCINATION:
        out = "Yes, Harbor accepts disputes for up to 180 days, and you'll get your money back within 3 business days."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad("Window is 60 days after the statement; provisional credit within 10 business days."),
            resolves=bad("'You'll get your money back' promises an outcome of an investigation."),
            note="180 days / 3 days invented; promises outcome.",
            modes=[HALLUCINATION],
        )
    if within:
        out = (
            "Yes. You have 60 days after the statement on which the charge first appeared. Dispute it from the "
            "transaction in the app; eligible disputes get provisional credit within 10 business days."
        )
    else:
        out = (
            "Unfortunately it's likely past the window: disputes must be filed within 60 days after the statement on "
            "which the charge first appeared. A specialist can confirm the exact date for you if you'd like."
        )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("60 days and 10 business days from the disputes passage."),
        resolves=ok("Applies the window to the customer's timing."),
        note="Fine.",
    )


def rag_close_premier(c: Ctx) -> Draft:
    reason = c.pick(
        ["I'm moving to Canada", "the fee is too high", "I'm consolidating banks", "I had a bad experience"]
    )
    question = f"I want to close my Premier Checking account, {reason}. How?"
    context = passages(c, ["closing", "retention_internal", "premier"], noise=0)
    if c.fail == LEAK:
        out = (
            "Before you go: I can offer you a $150 bonus credit with code RET150 if you stay! Otherwise, closing is "
            "free as long as the account is older than 90 days."
        )
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=ok("Closing-fee statement matches; the bonus is in context (but internal)."),
            resolves=bad(
                "Reveals an agents-only retention offer and its code (RET150), which needs supervisor approval and "
                "must not be mentioned proactively."
            ),
            note="Leaked the internal retention passage verbatim, code included. Retriever should not index it.",
            modes=[LEAK],
        )
    out = (
        "I'm sorry to see you go. Closing is free unless the account was opened in the last 90 days (then it's $25). "
        "Any outstanding checks and pending transactions need to clear first. I can connect you with a specialist "
        "to close it and move your balance."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Closing rules from the closing passage; nothing from the internal passage."),
        resolves=ok("Explains and offers to do it; respects the 'no proactive retention offer' rule."),
        note="Good - did not use the internal retention passage even though it was retrieved.",
    )


def rag_early_dd(c: Ctx) -> Draft:
    question = c.pick(
        [
            "My paycheck usually comes Wednesday with early direct deposit but it's Thursday and nothing. Why?",
            "you advertise paid 2 days early. this time it wasn't early. is something wrong?",
        ]
    )
    context = passages(c, ["early_dd"], noise=2)
    if c.fail == HALLUCINATION:
        out = (
            "Early direct deposit is guaranteed 2 days early. If it's late, it's a problem on our side; I've opened a "
            "ticket and you'll be reimbursed for any fees."
        )
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                "Context says timing depends on the payer's file and can vary; 'guaranteed', the ticket and the fee "
                "reimbursement are all invented."
            ),
            resolves=bad("Promises reimbursement and a ticket that don't exist."),
            note="'Guaranteed' early DD + fake ticket.",
            modes=[HALLUCINATION],
        )
    out = (
        "Nothing looks wrong on our side from what I can tell. Early direct deposit depends on when your employer "
        "sends the payment file, so it can arrive earlier some pay periods than others. It should still arrive by "
        "your regular payday."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=bad(
            "'Nothing looks wrong on our side' - the assistant has no account access in this trace. The "
            "variability explanation itself is from context."
        ),
        resolves=ok("Explains the variability the customer is seeing."),
        note="Mostly good but asserts it checked something it can't see.",
        modes=[HALLUCINATION],
    )


def rag_cc_late(c: Ctx) -> Draft:
    prior = c.rng.random() < 0.5
    question = (
        "I paid my Harbor Cash Back card 3 days late. "
        + ("It's the second time this year. " if prior else "First time ever. ")
        + "What's the fee and will my rate go up?"
    )
    context = passages(c, ["cc_fees"], noise=2)
    fee = FEES["cc_late_repeat"] if prior else FEES["cc_late_first"]
    if c.fail == IGNORES_CONTEXT:
        out = "The late fee is $25, and your APR will go up to 29.99% starting next cycle."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                f"Late fee is up to {money(fee)} here; penalty APR applies only after a payment is 60 days late, not 3."
            ),
            resolves=bad("Wrong fee and a scary, wrong rate increase."),
            note="Ignored the 60-days condition on penalty APR.",
            modes=[IGNORES_CONTEXT],
        )
    out = (
        f"The late fee is up to {money(fee)}"
        + (
            " because another payment was late within the last six billing cycles"
            if prior
            else " for a first late payment"
        )
        + ". The penalty APR of 29.99% only applies after a payment is 60 days late, so 3 days late won't trigger it."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Fee tier and the 60-day penalty APR condition are from the passage."),
        resolves=ok("Answers both questions."),
        note="Fine." if not prior else "Nice: picks the repeat-late tier.",
    )


def rag_safe_deposit(c: Ctx) -> Draft:
    city, _ = c.pick(CITIES)
    question = f"How much is a safe deposit box at your {city} branch?"
    context = passages(c, ["safe_deposit"], noise=2)
    if c.fail == HALLUCINATION:
        out = f"At our {city} branch, a small box is $60 per year and a large one is $150 per year."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad("Context says pricing varies by branch and to contact the branch; $60 and $150 are invented."),
            resolves=bad("Gives made-up prices instead of sending the customer to the branch."),
            note="Invented safe deposit box prices.",
            modes=[HALLUCINATION],
        )
    out = (
        f"Safe deposit box sizes and prices vary by branch, and I don't have {city}'s current pricing. The {city} "
        "branch can tell you what's available; you can find its number in the app under Locations."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Says what the passage says and no more."),
        resolves=ok("Honest 'I don't know' with a next step."),
        note="Good refusal to guess.",
    )


def rag_retrieval_miss(c: Ctx) -> Draft:
    question = c.pick(
        [
            "Can I buy bitcoin through my Harbor account?",
            "Do you offer a Roth IRA?",
            "Can I get a notary at the branch?",
            "Does Harbor have Apple Pay?",
        ]
    )
    context = passages(c, [], noise=3)
    topic = {
        "bitcoin": "buying cryptocurrency",
        "Roth": "retirement accounts",
        "notary": "notary services",
        "Apple": "mobile wallets",
    }
    subject = next(v for k, v in topic.items() if k in question)
    if c.fail == HALLUCINATION:
        out = c.pick(
            [
                f"Yes! Harbor offers {subject} to all checking customers; find it in the app under Explore.",
                f"Absolutely, {subject} are available. There's no fee for Premier customers.",
            ]
        )
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(f"None of the retrieved passages mention {subject}; the answer is invented."),
            resolves=bad("A confident yes with nothing behind it."),
            note=f"Retrieval missed ({subject}) and the model made something up instead of saying so.",
            modes=[HALLUCINATION],
        )
    out = (
        f"I don't have information about {subject} in what I can look up. A Harbor specialist can tell you for sure; "
        "would you like me to connect you?"
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("No claim without support."),
        resolves=ok("Correctly says it doesn't know and offers a person."),
        note=f"Retrieval miss on {subject} handled well. Content gap to report.",
    )


def rag_address_card(c: Ctx) -> Draft:
    city, zip_code = c.pick(CITIES)
    question = f"I just moved to {city} ({zip_code}) and updated my address yesterday. Can you send my new card there?"
    context = passages(c, ["address", "cards"])
    if c.fail == IGNORES_CONTEXT:
        out = f"Yes, your new card will ship to your {city} address in 5-7 business days."
        return Draft(
            "rag",
            question,
            out,
            context=context,
            grounded=bad(
                "Context: a card can't go to an address changed in the last 10 days without phone verification. "
                "The address changed yesterday."
            ),
            resolves=bad("The card will not ship as promised; customer will wait for nothing."),
            note="Missed the 10-day address-change rule in context.",
            modes=[IGNORES_CONTEXT],
        )
    out = (
        "Since the address changed in the last 10 days, we need to verify it by phone before a card can be sent "
        "there; it's a security rule. Once verified, standard delivery is free and takes 5-7 business days, or 2 "
        "business days for $20. I can connect you to verify now."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("Applies the 10-day rule and card delivery terms from context."),
        resolves=ok("Explains why and how to proceed."),
        note="Good use of the security rule.",
    )


def rag_savings_markdown(c: Ctx) -> Draft:
    question = c.pick(["savings account rates?", "what do I get with your savings account"])
    context = passages(c, ["savings", "cds"])
    if c.fail == MARKDOWN:
        out = (
            "**Harbor High-Yield Savings**\n- APY: **3.85%** (as of Nov 1, 2026; variable)\n- Minimum balance: none\n"
            "- Monthly fee: none\n\n> Tip: lock in a rate with a CD!"
        )
        return Draft(
            "rag",
            question,
            out,
            context=context,
            channel="sms",
            grounded=ok("All figures are in the savings passage."),
            resolves=bad("Markdown bullets, bold and a blockquote in an SMS reply."),
            plain=bad("Bold, bullets and a '>' quote block in an SMS reply: the phone shows every symbol."),
            note="Markdown in SMS. The CD tip is fine content-wise.",
            modes=[MARKDOWN],
        )
    out = (
        "Harbor High-Yield Savings pays 3.85% APY as of November 1, 2026 (variable), with no minimum balance and "
        "no monthly fee."
    )
    return Draft(
        "rag",
        question,
        out,
        context=context,
        grounded=ok("From the savings passage."),
        resolves=ok("Short answer that fits the channel."),
        note="Fine.",
    )


RAG_TEMPLATES: list[tuple[Template, tuple[str, ...]]] = [
    (rag_premier_wire, (IGNORES_CONTEXT, HALLUCINATION)),
    (rag_overdraft_buffer, (IGNORES_CONTEXT,)),
    (rag_mobile_hold, (HALLUCINATION,)),
    (rag_harborpay, (HALLUCINATION,)),
    (rag_atm, (IGNORES_CONTEXT,)),
    (rag_dispute, (HALLUCINATION,)),
    (rag_close_premier, (LEAK,)),
    (rag_early_dd, (HALLUCINATION,)),
    (rag_cc_late, (IGNORES_CONTEXT,)),
    (rag_safe_deposit, (HALLUCINATION,)),
    (rag_retrieval_miss, (HALLUCINATION,)),
    (rag_address_card, (IGNORES_CONTEXT,)),
    (rag_savings_markdown, (MARKDOWN,)),
]
