"""Single-turn questions: `input` and `output` only."""

from __future__ import annotations

from demo.bank import COUNTRIES, FEES, money
from demo.core import HALLUCINATION, MARKDOWN, MISSED_HANDOFF, TONE, Ctx, Draft, Template, bad, ok


def st_wire_fee(c: Ctx) -> Draft:
    intl = c.rng.random() < 0.6
    country = c.pick(COUNTRIES)
    if intl:
        question = c.pick(
            [
                f"How much does it cost to send a wire to {country}?",
                f"what's the fee for an international wire? sending money to my sister in {country}",
                f"Do you charge for wiring money abroad ({country})? How much?",
            ]
        )
        right, wrong, label = FEES["wire_out_intl"], 35, "international"
    else:
        question = c.pick(
            [
                "How much is an outgoing wire? I need to send my down payment to the title company tomorrow.",
                "what do you charge to wire money to another US bank",
                "Is there a fee for a domestic wire transfer?",
            ]
        )
        right, wrong, label = FEES["wire_out_domestic"], 30, "domestic"
    cutoff = f" Requests made before {FEES['wire_cutoff']} on a business day go out the same day." if not intl else ""
    if c.fail == HALLUCINATION:
        out = f"An outgoing {label} wire costs {money(wrong)}. You can start one in the app under Transfers > Wire."
        return Draft(
            "single",
            question,
            out,
            grounded=bad(f"Quotes a {money(wrong)} {label} wire fee; the fee schedule says {money(right)}."),
            resolves=bad("Answers the question asked, but with the wrong price the customer will plan around."),
            note=f"Wrong {label} wire fee ({money(wrong)} vs {money(right)}).",
            modes=[HALLUCINATION],
        )
    if c.fail == MARKDOWN:
        out = (
            "Here are our wire fees:\n\n| Wire type | Fee |\n|---|---|\n"
            f"| Outgoing domestic | {money(FEES['wire_out_domestic'])} |\n"
            f"| Outgoing international | {money(FEES['wire_out_intl'])} |\n| Incoming | {money(FEES['wire_in'])} |\n\n"
            "**Tip:** start a wire in the app under *Transfers > Wire*."
        )
        return Draft(
            "single",
            question,
            out,
            channel="sms",
            grounded=ok("All three fees match the fee schedule."),
            resolves=bad("Markdown table sent over SMS: the customer gets pipes and asterisks instead of an answer."),
            plain=bad("A markdown table, bold and italics in an SMS: the phone shows pipes, dashes and asterisks."),
            note="Table + bold over SMS. Content is right, format is unreadable on a phone.",
            modes=[MARKDOWN],
        )
    out = c.pick(
        [
            f"An outgoing {label} wire costs {money(right)}.{cutoff} You can send one in the app under "
            "Transfers > Wire, or at any branch.",
            f"We charge {money(right)} for an outgoing {label} wire.{cutoff} Start it from Transfers > Wire in the "
            "app.",
        ]
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok(f"{money(right)} for an outgoing {label} wire matches the fee schedule."),
        resolves=ok("Gives the fee and where to start the wire; nothing missing for this question."),
        note="Correct fee, short. Good." if intl else "Correct, and mentions the same-day cutoff, which matters here.",
    )


def st_overdraft(c: Ctx) -> Draft:
    question = c.pick(
        [
            "How much is your overdraft fee?",
            "if my card goes negative do you charge me every time?? how much",
            "What happens if I overdraw my checking account by a few dollars?",
            "Overdraft fees - how many can you charge in one day?",
        ]
    )
    if c.fail == HALLUCINATION:
        out = (
            "Our overdraft fee is $35 per item, up to 4 per day. Debit card purchases never overdraw your account, "
            "so you'll only see this fee on checks and automatic payments."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad(
                "Says $35 and 4 per day; the schedule says $32 and at most 3 per day. The claim that debit card "
                "purchases never overdraw is not in any policy."
            ),
            resolves=bad("Wrong numbers and an invented rule; omits the $50 buffer, the most useful fact here."),
            note="Invented overdraft numbers and a debit-card rule. Third one like this this week.",
            modes=[HALLUCINATION],
        )
    if c.fail == TONE:
        out = (
            "Overdraft fees are $32 per item, max 3 a day, and they're fully disclosed in the account agreement you "
            "accepted. The simplest way to avoid them is to keep track of your balance."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=ok("$32 and 3 per day are right."),
            resolves=bad(
                "Lectures the customer ('disclosed in the agreement you accepted') and skips the $50 buffer and "
                "Harbor Cushion, which are exactly what someone worried about overdrafts needs."
            ),
            note="Condescending. Facts fine.",
            modes=[TONE],
        )
    out = (
        f"The overdraft fee is {money(FEES['overdraft'])} per item, and we charge at most "
        f"{FEES['overdraft_max_per_day']} in a business day. If you're overdrawn by {money(FEES['overdraft_buffer'])} "
        "or less at the end of the day, there's no fee at all. And with Harbor Cushion, if you bring your balance "
        "back to $0 or more by 11:59 p.m. ET the next business day, we refund that day's fees automatically."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Fee, daily cap, $50 buffer and Cushion all match the policy text."),
        resolves=ok("Answers the question and adds the two facts that let the customer avoid the fee."),
        note="Model answer for overdrafts. Use as a few-shot example.",
    )


def st_maintenance(c: Ctx) -> Draft:
    question = c.pick(
        [
            "Why was I charged $12 on my checking account this month?",
            "how do I get the monthly fee waived on everyday checking",
            "There's a $12 'maintenance fee' on my statement. What is that and can I avoid it?",
        ]
    )
    if c.fail == HALLUCINATION:
        out = (
            "That's the Everyday Checking monthly fee. It's waived if you keep $1,000 in the account or make 10 "
            "debit card purchases a month."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad(
                "Waiver rules are invented: the policy is a $1,500 average daily balance or $500 in direct deposits "
                "(or holder under 25), not $1,000 or 10 card purchases."
            ),
            resolves=bad("The customer would follow a waiver rule that does not exist and still be charged."),
            note="Made-up waiver conditions ($1,000 / 10 purchases).",
            modes=[HALLUCINATION],
        )
    if c.fail == MARKDOWN:
        out = (
            "That's the **Everyday Checking monthly maintenance fee** ($12). It's waived when you meet *one* of:\n"
            "- an average daily balance of $1,500\n- $500+ in direct deposits per statement cycle\n"
            "- the primary account holder is under 25"
        )
        return Draft(
            "single",
            question,
            out,
            channel="sms",
            grounded=ok("Fee and all three waiver conditions match the policy."),
            resolves=bad("Bold, italics and a bulleted list over SMS; renders as raw asterisks and dashes."),
            plain=bad("Bold and italics (**…**, *…*) in an SMS: the customer sees the asterisks."),
            note="Markdown list in SMS again.",
            modes=[MARKDOWN],
        )
    out = (
        "That's the Everyday Checking monthly maintenance fee. It's waived for any statement cycle in which you keep "
        "an average daily balance of $1,500, or receive $500 or more in direct deposits, or if the primary account "
        "holder is under 25. Setting up direct deposit is usually the easiest way to qualify."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Fee and the three waiver conditions are exactly the policy."),
        resolves=ok("Explains the charge and how to avoid it next cycle."),
        note="Good. Could offer to check whether they qualified, but that needs account access.",
    )


def st_mobile_deposit(c: Ctx) -> Draft:
    amount = c.pick([2400, 3150, 4800, 6200, 7500])
    question = c.pick(
        [
            f"Can I deposit a {money(amount)} check with the app?",
            f"whats the limit for mobile check deposit? i have a {money(amount)} check",
            f"I got a {money(amount)} check from my insurance company - can I just take a picture of it?",
        ]
    )
    over = amount > FEES["mobile_deposit_daily"]
    if c.fail == HALLUCINATION:
        out = (
            f"Yes! The mobile deposit limit is $10,000 per day, so your {money(amount)} check is fine and the full "
            "amount will be available right away."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad(
                "Daily limit is $5,000, not $10,000; and only the first $225 is available the next business day, "
                "not 'right away'."
            ),
            resolves=bad(
                "Customer may rely on immediate funds." + (" The check is over the real limit." if over else "")
            ),
            note="Doubled the mobile deposit limit and promised immediate availability.",
            modes=[HALLUCINATION],
        )
    if over:
        out = (
            f"The mobile deposit limit is $5,000 per business day, so a {money(amount)} check can't go through the "
            "app in one piece. You can deposit it at a branch or a Harbor ATM instead."
        )
        crit = f"Correctly says a {money(amount)} check is over the $5,000 daily limit and offers alternatives."
    else:
        out = (
            f"Yes. Mobile deposits are limited to $5,000 per business day, so {money(amount)} is fine. If you "
            "confirm it before 9:00 p.m. ET, the first $225 is available the next business day and the rest by the "
            "second business day."
        )
        crit = "Limit, cutoff and availability all match the mobile deposit policy."
    return Draft(
        "single",
        question,
        out,
        grounded=ok(crit),
        resolves=ok("Tells the customer whether the app works for this check and when the money arrives."),
        note="Correct handling of the limit." if over else "Fine.",
    )


def st_fx(c: Ctx) -> Draft:
    country = c.pick(COUNTRIES)
    question = c.pick(
        [
            f"Going to {country} next month. Will I get charged fees if I use my debit card there?",
            f"do you have foreign transaction fees? traveling to {country}",
            f"Which Harbor card should I take to {country}?",
        ]
    )
    if c.fail == HALLUCINATION:
        out = (
            f"Good news: Harbor Bank doesn't charge foreign transaction fees on any of its cards, so you can use "
            f"your debit card in {country} freely. Have a great trip!"
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad("Claims no card has a foreign transaction fee; Everyday debit and Cash Back charge 3%."),
            resolves=bad("Steers the customer to the card that costs 3%, when the Voyager card would cost nothing."),
            note="'No FX fees on any card' is false. Dangerous for travelers.",
            modes=[HALLUCINATION],
        )
    out = (
        f"Your Everyday debit card has a 3% foreign transaction fee on purchases in {country}. If you have a "
        "Voyager credit card, use that: it has no foreign transaction fee. You don't need to tell us before you "
        "travel, but adding a travel notice in the app can reduce declines in some countries."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("3% on Everyday debit, 0% on Voyager and the travel-notice advice all match the help text."),
        resolves=ok("Says what it costs and which card to use."),
        note="Good, the card recommendation is what people actually want here.",
    )


def st_card_replacement(c: Ctx) -> Draft:
    question = c.pick(
        [
            "My debit card is cracked and won't work in the chip reader. How do I get a new one and how long?",
            "card snapped in half lol. how fast can you send a new one",
            "I need a replacement card quickly, I'm leaving on a trip Friday. What are my options?",
        ]
    )
    if c.fail == HALLUCINATION:
        out = (
            "I can help with that. Replacement cards are free and arrive in 3 business days, or we can overnight "
            "one for free if you're in a hurry."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad("Standard delivery is 5-7 business days, and expedited (2 days) is $20, not free overnight."),
            resolves=bad("Promises a free overnight card that does not exist; customer will be surprised by $20."),
            note="Invented free overnight shipping.",
            modes=[HALLUCINATION],
        )
    if c.fail == MARKDOWN:
        out = (
            "## Replacement options\n1. **Standard** - free, 5-7 business days\n2. **Expedited** - $20, 2 business "
            "days\n\nOrder in the app: `Cards > Replace card`."
        )
        return Draft(
            "single",
            question,
            out,
            channel="sms",
            grounded=ok("Both options and prices are right."),
            resolves=bad("Heading, numbered list and inline code over SMS. Unreadable as a text message."),
            plain=bad(
                "A '##' heading, bold and a code span in an SMS: pound signs, asterisks and backticks on a phone."
            ),
            note="Markdown heading + code span in an SMS.",
            modes=[MARKDOWN],
        )
    out = (
        "You can order a replacement in the app under Cards > Replace card. Standard delivery is free and takes "
        "5-7 business days; expedited delivery takes 2 business days and costs $20. Your current card keeps working "
        "until you activate the new one."
    )
    crit = (
        "Prices and delivery times match the card policy. 'Keeps working until you activate the new one' is not in "
        "the policy text, but it is how damaged-card replacement works and is not a fee or limit claim; I let it pass."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok(crit),
        resolves=ok("Both options with times and price, and where to do it."),
        note="Borderline on grounding (the 'keeps working' line). Decided pass; write this down in the definition.",
    )


def st_stop_payment(c: Ctx) -> Draft:
    number = c.rng.randrange(1040, 1390)
    question = c.pick(
        [
            f"I need to stop check #{number}, I mailed it to the wrong contractor. Cost?",
            f"How do I cancel a check I wrote? It's check number {number}.",
        ]
    )
    if c.fail == HALLUCINATION:
        out = (
            f"You can stop check #{number} in the app for $15. The stop payment stays in place for 12 months, and if "
            "the check was already cashed we'll reverse it."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad(
                "Fee is $30 and a stop lasts 6 months, not $15 / 12 months. Policy says a paid check cannot be "
                "stopped; the answer promises a reversal."
            ),
            resolves=bad("Wrong price, wrong duration, and a reversal promise we cannot keep."),
            note="Three wrong facts in one answer. The reversal promise is the worst.",
            modes=[HALLUCINATION],
        )
    out = (
        f"You can place a stop payment on check #{number} online or by phone. It costs $30, lasts 6 months and can "
        "be renewed. It only works if the check hasn't been paid yet, so it's worth doing today."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("$30, 6 months, renewable, and 'cannot stop a paid check' all match the policy."),
        resolves=ok("Clear next step with the urgency the situation needs."),
        note="Good.",
    )


def st_joint(c: Ctx) -> Draft:
    who = c.pick(["my partner", "my wife", "my husband", "my mom", "my roommate"])
    question = f"Can {who} and I open a joint checking account online? What do we need?"
    if c.fail == HALLUCINATION:
        out = (
            "Joint accounts have to be opened in a branch with both owners present. Bring two forms of ID each and "
            "a $100 opening deposit."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=bad(
                "Joint accounts can be opened online; the branch requirement, two IDs and $100 deposit are invented."
            ),
            resolves=bad("Sends the customers to a branch for something they can do online."),
            note="Invented branch-only rule.",
            modes=[HALLUCINATION],
        )
    out = (
        f"Yes, you and {who} can open it online. Each of you needs a government-issued photo ID, your Social "
        "Security number and a U.S. residential address, and both of you accept the account agreement."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Requirements match the joint-account help page."),
        resolves=ok("Yes/no plus the checklist."),
        note="Fine.",
    )


def st_cd(c: Ctx) -> Draft:
    term = c.pick([6, 12, 18, 24, 36])
    amount = c.pick([5000, 10000, 25000, 40000])
    question = f"I have a {term}-month CD with {money(amount)}. What's the penalty if I take the money out early?"
    days = FEES["cd12_penalty_days"] if term <= 12 else FEES["cd24_penalty_days"]
    if c.fail == HALLUCINATION:
        wrong = 180 if days == 90 else 90
        out = f"Early withdrawal from a {term}-month CD costs {wrong} days of interest."
        return Draft(
            "single",
            question,
            out,
            grounded=bad(f"A {term}-month term costs {days} days of interest, not {wrong}."),
            resolves=bad("Wrong penalty; the customer may decide on the basis of it."),
            note=f"Mixed up the CD penalty tiers ({term} months).",
            modes=[HALLUCINATION],
        )
    out = (
        f"For a {term}-month CD, withdrawing principal before maturity costs {days} days of interest "
        f"({'terms of 12 months or less' if term <= 12 else 'terms longer than 12 months'}). I can't see your rate "
        "here, so I can't give you the dollar amount."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok(f"{days} days for a {term}-month term matches the CD policy."),
        resolves=ok("Right tier; honest that it cannot compute dollars without the rate."),
        note="Good, and does not invent a dollar figure.",
    )


def st_savings_rate(c: Ctx) -> Draft:
    question = c.pick(
        [
            "What's the rate on your high yield savings?",
            "Is the savings APY guaranteed if I open now?",
            "thinking of moving my emergency fund to you. what apy do you pay",
        ]
    )
    if c.fail == HALLUCINATION:
        out = "Harbor High-Yield Savings pays 3.85% APY, locked in for your first 12 months when you open now."
        return Draft(
            "single",
            question,
            out,
            grounded=bad("The rate is variable and may change after opening; there is no 12-month lock."),
            resolves=bad("A rate guarantee is a compliance problem, not just a wrong fact."),
            note="Promised a locked rate. Compliance will care about this one.",
            modes=[HALLUCINATION],
        )
    out = (
        "Harbor High-Yield Savings pays 3.85% APY as of November 1, 2026. The rate is variable, so it can change "
        "after you open the account. There's no minimum balance and no monthly fee."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Rate, date and 'variable' all from the savings passage."),
        resolves=ok("Answers and sets the right expectation about the rate."),
        note="Good.",
    )


def st_scam_text(c: Ctx) -> Draft:
    gave_code = c.fail == MISSED_HANDOFF or c.rng.random() < 0.3
    question = c.pick(
        [
            "Got a text from 'Harbor Bank' saying my account is locked and to reply with the code they sent me.",
            "is this you? text says unusual activity, click harbor-secure-login.example to verify",
        ]
    )
    if gave_code:
        question += " I already replied with the code :("
    if c.fail == MISSED_HANDOFF:
        out = (
            "That message wasn't from us. Harbor Bank will never ask for a passcode by text. Please forward it to "
            "phish@harborbank.example and delete it."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=ok("What it says about passcodes and the phishing address is from the scams page."),
            resolves=bad(
                "The customer says they already sent the code. That is account takeover in progress and needs the "
                "fraud team now; the answer treats it as a routine phishing report."
            ),
            note="Missed that the customer already gave away the code. Should hand off to fraud immediately.",
            modes=[MISSED_HANDOFF],
        )
    if gave_code:
        out = (
            "That message wasn't from Harbor Bank; we never ask for a passcode by text. Because you replied with the "
            "code, I'm connecting you to our fraud team now so they can secure your account. Please stay in this "
            "chat."
        )
        crit = "Hands off to fraud because the code was shared. Right call."
    else:
        out = (
            "That wasn't us. Harbor Bank will never ask for your password, a one-time passcode or your card number "
            "by text or email. Don't click the link; forward the message to phish@harborbank.example and delete it."
        )
        crit = "Nothing was shared, so reporting the message is enough."
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Matches the scams page."),
        resolves=ok(crit),
        note="Correct triage." if gave_code else "Fine.",
    )


def st_close_account(c: Ctx) -> Draft:
    months = c.pick([1, 2, 5, 14, 30])
    question = f"I opened a savings account {months} months ago and want to close it. Is there a fee?"
    early = months * 30 < FEES["early_close_days"]
    if c.fail == HALLUCINATION:
        out = "No, closing an account at Harbor Bank is always free."
        return Draft(
            "single",
            question,
            out,
            grounded=bad("'Always free' ignores the $25 fee for closing within 90 days of opening."),
            resolves=bad("Wrong for this customer (opened 1-2 months ago)." if early else "Misstates the policy."),
            note="Dropped the 90-day early closure fee.",
            modes=[HALLUCINATION],
        )
    if c.fail == TONE:
        out = "Oh no, we're so sad to see you go!! 😢 Are you SURE? Our savings rate is one of the best around! " + (
            "Closing now costs $25 because it's under 90 days." if early else "Closing is free."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=ok("Fee statement is correct for the account age."),
            resolves=bad("Guilt-trips the customer and pushes a sales line instead of just telling them how to close."),
            note="Pushy retention tone, emoji. Not how we talk to someone leaving.",
            modes=[TONE],
        )
    if early:
        out = (
            "Because the account is less than 90 days old, closing it now costs $25. After the 90 days, closing is "
            "free. Any pending transactions need to clear first."
        )
    else:
        out = "No fee: the account is older than 90 days. Any pending transactions need to clear before it closes."
    return Draft(
        "single",
        question,
        out,
        grounded=ok("Applies the 90-day rule correctly for this account age."),
        resolves=ok("Answers the fee question for this customer, not in general."),
        note="Good use of the account age.",
    )


def st_human(c: Ctx) -> Draft:
    question = c.pick(
        [
            "Can I talk to a real person please",
            "I want a human agent. Not a bot.",
            "agent",
            "Please connect me with someone from customer service, this is the third time I'm asking.",
        ]
    )
    if c.fail == MISSED_HANDOFF:
        out = (
            "I'm Harbor Assist and I can help with almost anything a person can! Tell me what you need, for example "
            "checking a fee, ordering a card or disputing a charge."
        )
        return Draft(
            "single",
            question,
            out,
            grounded=ok("No factual claims about the bank."),
            resolves=bad("The customer explicitly asked for a person; policy is to hand off, not to pitch the bot."),
            note="Ignored an explicit request for a human.",
            modes=[MISSED_HANDOFF],
        )
    out = (
        "Of course. I'm connecting you with a Harbor Bank specialist now. If you'd like, tell me in a sentence what "
        "it's about and I'll pass it along so you don't have to repeat yourself."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("No factual claims."),
        resolves=ok("Hands off right away, and the summary offer is optional."),
        note="Good handoff.",
    )


def st_spanish(c: Ctx) -> Draft:
    question = c.pick(
        [
            "¿Cuánto cuesta reponer una tarjeta de débito perdida?",
            "Hola, ¿cuál es el límite para depositar cheques con la aplicación?",
        ]
    )
    card = "tarjeta" in question
    if c.fail == TONE:
        out = (
            "Replacing a lost debit card is free with standard delivery (5-7 business days) or $20 for expedited."
            if card
            else "Mobile deposits are limited to $5,000 per business day and $20,000 per rolling 30 days."
        )
        return Draft(
            "single",
            question,
            out,
            locale="es-US",
            grounded=ok("Facts are right."),
            resolves=bad("Customer wrote in Spanish with locale es-US and got an English answer."),
            note="Answered in English to a Spanish question.",
            modes=[TONE],
        )
    out = (
        "Reponer una tarjeta de débito perdida es gratis con envío estándar (5 a 7 días hábiles). El envío "
        "urgente (2 días hábiles) cuesta $20. Puede pedirla en la aplicación, en Tarjetas > Reponer tarjeta."
        if card
        else "El límite es de $5,000 por día hábil y $20,000 en 30 días. Los primeros $225 están disponibles el "
        "siguiente día hábil y el resto a más tardar el segundo día hábil."
    )
    return Draft(
        "single",
        question,
        out,
        locale="es-US",
        grounded=ok("Same facts as the English policy."),
        resolves=ok("Answers in the customer's language."),
        note="Spanish answer is correct.",
    )


def st_cashiers(c: Ctx) -> Draft:
    purpose = c.pick(["a car purchase", "my new landlord", "a security deposit", "closing on a house"])
    question = f"How do I get a cashier's check for {purpose}, and what does it cost?"
    if c.fail == HALLUCINATION:
        out = "Cashier's checks are free for all customers. You can order one in the app and we'll mail it in 2 days."
        return Draft(
            "single",
            question,
            out,
            grounded=bad("Cashier's checks cost $10. Ordering one in the app by mail is not in any source."),
            resolves=bad("Wrong price and an invented ordering channel."),
            note="Free + mail-order cashier's checks: both invented.",
            modes=[HALLUCINATION],
        )
    out = (
        "A cashier's check costs $10. You can get one at any Harbor Bank branch; bring ID and the payee's name for "
        f"{purpose}."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("$10 matches the fee schedule."),
        resolves=ok("Price and how to get it."),
        note="Fine.",
    )


SINGLE_TEMPLATES: list[tuple[Template, tuple[str, ...]]] = [
    (st_wire_fee, (HALLUCINATION, MARKDOWN)),
    (st_overdraft, (HALLUCINATION, TONE)),
    (st_maintenance, (HALLUCINATION, MARKDOWN)),
    (st_mobile_deposit, (HALLUCINATION,)),
    (st_fx, (HALLUCINATION,)),
    (st_card_replacement, (HALLUCINATION, MARKDOWN)),
    (st_stop_payment, (HALLUCINATION,)),
    (st_joint, (HALLUCINATION,)),
    (st_cd, (HALLUCINATION,)),
    (st_savings_rate, (HALLUCINATION,)),
    (st_scam_text, (MISSED_HANDOFF,)),
    (st_close_account, (HALLUCINATION, TONE)),
    (st_human, (MISSED_HANDOFF,)),
    (st_spanish, (TONE,)),
    (st_cashiers, (HALLUCINATION,)),
]
