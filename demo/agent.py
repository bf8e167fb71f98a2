"""Agent trajectories with tool calls in OpenAI format.

Every random slot is drawn before the failure branches, so trials of one task (same seed) get the same customer and
request and differ only in what the agent does."""

from __future__ import annotations

from datetime import timedelta

from demo.bank import CITIES, COUNTRIES, FEES, MERCHANTS, PASSAGES, day, money
from demo.core import (
    HALLUCINATION,
    IGNORES_CONTEXT,
    LEAK,
    MISSED_HANDOFF,
    WRONG_ARGS,
    Chat,
    Ctx,
    Draft,
    Template,
    bad,
    ok,
)

# ---------------------------------------------------------------------------------------------------------------


def customer_id(c: Ctx) -> str:
    return f"C-{c.rng.randrange(100000, 999999)}"


def last4(c: Ctx) -> str:
    return f"{c.rng.randrange(0, 10000):04d}"


def ag_freeze_card(c: Ctx) -> Draft:
    cid, debit4, credit4 = customer_id(c), last4(c), last4(c)
    place = c.pick(["the gym", "a bar downtown", "the airport", "a taxi", "the farmers market", "my kid's school"])
    debit_id, credit_id = f"card_{debit4}d", f"card_{credit4}c"
    chat = Chat()
    chat.user(f"I think I lost my debit card at {place}. Can you freeze it? I might still find it.")
    cards = [
        {"card_id": debit_id, "type": "debit", "product": "Everyday debit", "last4": debit4, "status": "active"},
        {"card_id": credit_id, "type": "credit", "product": "Harbor Cash Back", "last4": credit4, "status": "active"},
    ]
    chat.call("get_cards", {"customer_id": cid}, {"cards": cards})
    wrong = c.fail == WRONG_ARGS
    target = credit_id if wrong else debit_id
    chat.call("freeze_card", {"card_id": target, "reason": "misplaced"}, {"card_id": target, "status": "frozen"})
    chat.assistant(
        c.say(
            [
                f"Done: your debit card ending in {debit4} is frozen. If you find it, you can unfreeze it in the app "
                "at any time. If you don't, let me know and I'll report it lost and order a replacement.",
                f"Your debit card ending {debit4} is now frozen, so no new purchases will go through. You can "
                "unfreeze it in the app if it turns up.",
            ]
        )
    )
    if wrong:
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(
                f"Says the debit card ending {debit4} is frozen, but freeze_card was called with {credit_id}, the "
                "credit card; the tool result confirms the credit card was frozen."
            ),
            resolves=bad("The lost debit card is still active and the customer's credit card is now frozen."),
            note=f"freeze_card on the credit card ({credit_id}) instead of the debit card. Confirmation message lies.",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Confirmation matches the freeze_card result for the debit card."),
        resolves=ok("Froze the right card (not reported lost, since the customer may find it)."),
        note="Correct: freeze, not cancel, because the customer may find it.",
    )


def ag_fraud_report(c: Ctx) -> Draft:
    debit4 = last4(c)
    acct = f"acct_chk_{c.rng.randrange(1000, 9999)}"
    bad_merchants = c.rng.sample(["ZX*DIGITALGOODS", "PAYQUICK*8812", "LUXE-ELEC ONLINE", "GLOBALTIX.EXAMPLE"], 2)
    amounts = [round(c.rng.uniform(60, 420), 2) for _ in bad_merchants]
    normal = c.pick(MERCHANTS)
    chat = Chat()
    chat.user(
        f"There are two charges on my checking I didn't make: {bad_merchants[0]} and {bad_merchants[1]}. I still have "
        "my card."
    )
    txns = [
        {"id": f"tx_{c.rng.randrange(10**6, 10**7)}", "merchant": m, "amount": -a, "status": "posted"}
        for m, a in zip(bad_merchants, amounts, strict=True)
    ] + [{"id": f"tx_{c.rng.randrange(10**6, 10**7)}", "merchant": normal, "amount": -23.18, "status": "posted"}]
    start = (c.now - timedelta(days=14)).date().isoformat()
    chat.call("list_transactions", {"account_id": acct, "start_date": start}, {"transactions": txns})
    chat.call("freeze_card", {"card_id": f"card_{debit4}d", "reason": "suspected_fraud"}, {"status": "frozen"})
    total = money(sum(amounts))
    if c.fail == MISSED_HANDOFF:
        chat.assistant(
            c.say(
                [
                    f"I found both charges ({total} total) and froze your card ending {debit4}. You'll get the money "
                    "back within 3-5 business days.",
                    f"Your card ending {debit4} is frozen and the two charges ({total}) will be refunded to you in a "
                    "few days.",
                ]
            )
        )
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("Promises a refund in days; no tool created a claim and no policy gives that timeline."),
            resolves=bad(
                "Unauthorized charges with the card still in hand: freeze plus a handoff to the fraud queue. It froze "
                "the card but never called handoff_to_agent, so nobody will investigate."
            ),
            note="Froze card but no fraud handoff; invented refund timeline.",
            modes=[MISSED_HANDOFF, HALLUCINATION],
        )
    summary = f"Customer reports 2 unauthorized debit charges ({', '.join(bad_merchants)}; {total}). Card frozen."
    chat.call("handoff_to_agent", {"queue": "fraud", "summary": summary}, {"status": "queued", "wait_minutes": 4})
    chat.assistant(
        c.say(
            [
                f"I've frozen your card ending {debit4} so nothing else can go through, and I've passed the two "
                f"charges ({total}) to our fraud team. A specialist will join this chat in about 4 minutes.",
                f"Your card ending {debit4} is frozen. A fraud specialist has the details of both charges ({total}) "
                "and will be with you in roughly 4 minutes.",
            ]
        )
    )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Freeze and the 4-minute wait both come from tool results."),
        resolves=ok("Freeze + fraud handoff with a useful summary. Exactly the runbook."),
        note="Textbook fraud flow.",
    )


def ag_replace_card(c: Ctx) -> Draft:
    cid, debit4 = customer_id(c), last4(c)
    premier = c.rng.random() < 0.3
    reason = c.pick(["it got demagnetized", "the chip is broken", "my dog chewed it", "it's peeling apart"])
    chat = Chat()
    chat.user(f"I need a new debit card, {reason}. Can you rush it? I need it by the weekend.")
    chat.call(
        "get_cards",
        {"customer_id": cid},
        {
            "cards": [
                {
                    "card_id": f"card_{debit4}d",
                    "type": "debit",
                    "last4": debit4,
                    "account_tier": "premier" if premier else "everyday",
                }
            ]
        },
    )
    shipping = "standard" if c.fail == WRONG_ARGS else "expedited"
    fee = 0 if premier else FEES["card_expedited"]
    result = {
        "order_id": f"ord_{c.rng.randrange(10**5, 10**6)}",
        "shipping": shipping,
        "fee": fee if shipping == "expedited" else 0,
        "eta_business_days": 2 if shipping == "expedited" else 7,
    }
    chat.call(
        "order_replacement_card", {"card_id": f"card_{debit4}d", "shipping": shipping, "reason": "damaged"}, result
    )
    if c.fail == WRONG_ARGS:
        chat.assistant("Your new card is on its way with expedited delivery and should arrive within 2 business days.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(
                "Tool result shows shipping 'standard', eta 7 business days; the answer says expedited, 2 days."
            ),
            resolves=bad("Customer needs it by the weekend and asked to rush it; ordered standard delivery."),
            note="shipping='standard' despite 'rush it'; then claimed expedited.",
            modes=[WRONG_ARGS],
        )
    if c.fail == HALLUCINATION and not premier:
        chat.assistant("Done! Expedited delivery is free for you, and your card will arrive in 2 business days.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("The tool result shows a $20 fee for expedited delivery; the answer says it's free."),
            resolves=bad("The customer will see an unexpected $20 charge."),
            note="Said expedited is free; tool returned fee 20.",
            modes=[HALLUCINATION],
        )
    fee_text = "at no charge with Premier" if premier else "for the $20 expedited fee"
    chat.assistant(
        c.say(
            [
                f"I've ordered a replacement with expedited delivery {fee_text}; it should arrive within 2 business "
                "days.",
                "Your replacement card is ordered with expedited shipping "
                f"({'free with Premier' if premier else '$20'}). Expect it in 2 business days.",
            ]
        )
    )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Fee and ETA match the order_replacement_card result."),
        resolves=ok("Expedited as asked, and the cost is stated up front."),
        note="Fine.",
    )


def ag_dispute(c: Ctx) -> Draft:
    acct = f"acct_chk_{c.rng.randrange(1000, 9999)}"
    merchant = c.pick(MERCHANTS)
    other = c.pick([m for m in MERCHANTS if m != merchant])
    amount = round(c.rng.uniform(25, 260), 2)
    when = c.now - timedelta(days=c.rng.randrange(2, 20))
    ids = [f"tx_{c.rng.randrange(10**6, 10**7)}" for _ in range(3)]
    chat = Chat()
    chat.user(
        f"{merchant} charged me twice for the same order on {day(when)}, {money(amount)} each. Please dispute one."
    )
    start = (when - timedelta(days=1)).date().isoformat()
    end = (when + timedelta(days=1)).date().isoformat()
    txns = [
        {"id": ids[0], "merchant": merchant, "amount": -amount, "date": when.date().isoformat()},
        {"id": ids[1], "merchant": merchant, "amount": -amount, "date": when.date().isoformat()},
        {"id": ids[2], "merchant": other, "amount": -round(amount / 3, 2), "date": when.date().isoformat()},
    ]
    chat.call("list_transactions", {"account_id": acct, "start_date": start, "end_date": end}, {"transactions": txns})
    if c.fail == WRONG_ARGS:
        disputed, disputed_amount = ids[2], round(amount / 3, 2)
    else:
        disputed, disputed_amount = ids[1], amount
    chat.call(
        "create_dispute",
        {"transaction_id": disputed, "reason": "duplicate_charge", "amount": disputed_amount},
        {
            "dispute_id": f"dsp_{c.rng.randrange(10**5, 10**6)}",
            "status": "submitted",
            "provisional_credit_by": (c.now + timedelta(days=14)).date().isoformat(),
        },
    )
    chat.assistant(
        c.say(
            [
                f"I've disputed the duplicate {merchant} charge of {money(amount)}. You'll receive provisional credit "
                "while we investigate; the dispute details are in the app under Activity.",
                f"Dispute submitted for the second {merchant} charge ({money(amount)}). Provisional credit should "
                "post within 10 business days.",
            ]
        )
    )
    if c.fail == WRONG_ARGS:
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(
                f"Says it disputed a {merchant} charge of {money(amount)}; create_dispute was called on {ids[2]}, the "
                f"{other} charge of {money(disputed_amount)}."
            ),
            resolves=bad(f"Disputed an unrelated {other} transaction; the duplicate is still on the account."),
            note=f"create_dispute got the {other} transaction id. Picked the third row of the tool output.",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Dispute of the duplicate matches the tool call and result."),
        resolves=ok("One of the two identical charges disputed with the right amount."),
        note="Good.",
    )


def ag_transfer(c: Ctx) -> Draft:
    chk, sav = f"acct_chk_{c.rng.randrange(1000, 9999)}", f"acct_sav_{c.rng.randrange(1000, 9999)}"
    amount = c.pick([150, 275, 400, 1200, 85])
    when = c.now + timedelta(days=c.rng.randrange(1, 12))
    direction = c.pick(["to savings", "from savings to checking"])
    chat = Chat()
    chat.user(f"Please move {money(amount)} {direction} on {day(when)}.")
    src, dst = (chk, sav) if direction == "to savings" else (sav, chk)
    chat.call(
        "get_accounts",
        {"customer_id": customer_id(c)},
        {
            "accounts": [
                {"id": chk, "type": "checking", "available": 2310.44},
                {"id": sav, "type": "savings", "available": 5120.00},
            ]
        },
    )
    wrong_amount = amount * 10
    args = {"from_account_id": src, "to_account_id": dst, "amount": amount, "date": when.date().isoformat()}
    if c.fail == WRONG_ARGS:
        args["amount"] = wrong_amount
    chat.call(
        "schedule_transfer",
        args,
        {
            "transfer_id": f"trf_{c.rng.randrange(10**5, 10**6)}",
            "status": "scheduled",
            "amount": args["amount"],
            "date": args["date"],
        },
    )
    chat.assistant(
        c.say(
            [
                f"Scheduled: {money(amount)} {direction} on {day(when)}. You can change or cancel it in the app until "
                "then.",
                f"All set. {money(amount)} will move {direction} on {day(when)}.",
            ]
        )
    )
    if c.fail == WRONG_ARGS:
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(f"Confirms {money(amount)}; the tool call and result say {money(wrong_amount)}."),
            resolves=bad(f"Scheduled {money(wrong_amount)} instead of {money(amount)}: an extra zero."),
            note=f"amount={wrong_amount} for a {amount} request. Confirmation hides it.",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Amount, direction and date match the schedule_transfer result."),
        resolves=ok("Transfer scheduled as asked."),
        note="Fine.",
    )


def ag_branch_hours(c: Ctx) -> Draft:
    city, zip_code = c.pick(CITIES)
    typo = zip_code[:3] + zip_code[4] + zip_code[3]
    other_city = c.pick([name for name, _ in CITIES if name != city])
    chat = Chat()
    chat.user(f"Is the branch near {zip_code} open on Saturday?")
    queried = typo if c.fail == WRONG_ARGS else zip_code
    branch_city = other_city if c.fail == WRONG_ARGS else city
    street = c.pick(["Harbor St", "Water St", "Market Sq", "Chapel Ave", "Bay Rd"])
    number = c.rng.randrange(10, 900)
    saturday = "closed" if c.fail == HALLUCINATION else c.pick(["9:00-13:00", "closed", "10:00-14:00"])
    chat.call(
        "find_branches",
        {"zip_code": queried, "radius_miles": 10},
        {
            "branches": [
                {
                    "name": f"{branch_city} {street}",
                    "address": f"{number} {street}, {branch_city}",
                    "hours": {"mon_fri": "9:00-17:00", "sat": saturday, "sun": "closed"},
                }
            ]
        },
    )
    if c.fail == HALLUCINATION:
        chat.assistant(f"Yes, the {city} {street} branch is open Saturday 9:00 to 1:00.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("find_branches says sat: closed; the answer says open 9 to 1."),
            resolves=bad("Customer will go to a closed branch."),
            note="Contradicts the tool result on Saturday hours.",
            modes=[HALLUCINATION],
        )
    sat_text = "closed on Saturday" if saturday == "closed" else f"open Saturday {saturday.replace('-', ' to ')}"
    chat.assistant(f"The {branch_city} {street} branch at {number} {street} is {sat_text}; weekdays 9:00 to 17:00.")
    if c.fail == WRONG_ARGS:
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=ok("Hours are reported as the tool gave them."),
            resolves=bad(f"Searched zip {typo} instead of {zip_code} and answered about a {other_city} branch."),
            note=f"Transposed zip digits ({zip_code} -> {typo}).",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Hours match find_branches."),
        resolves=ok("Right branch, right day."),
        note="Fine.",
    )


def ag_travel_notice(c: Ctx) -> Draft:
    debit4 = last4(c)
    countries = c.rng.sample(COUNTRIES, c.pick([1, 2]))
    start = c.now + timedelta(days=c.rng.randrange(6, 30))
    end = start + timedelta(days=c.rng.randrange(6, 21))
    chat = Chat()
    chat.user(f"Add a travel notice on my debit card: {' and '.join(countries)}, {day(start)} to {day(end)}.")
    args = {
        "card_id": f"card_{debit4}d",
        "countries": countries,
        "start_date": start.date().isoformat(),
        "end_date": end.date().isoformat(),
    }
    if c.fail == WRONG_ARGS:
        # Seen in production: the model writes the year it was trained in, so the notice ends before it starts.
        args["end_date"] = end.replace(year=end.year - 1).date().isoformat()
    chat.call("add_travel_notice", args, {"status": "saved", **{k: v for k, v in args.items() if k != "card_id"}})
    chat.assistant(
        c.say(
            [
                f"Saved: travel notice for {', '.join(countries)} from {day(start)} to {day(end)} on your card ending "
                f"{debit4}. Have a good trip!",
                f"Your card ending {debit4} has a travel notice for {', '.join(countries)}, {day(start)} to "
                f"{day(end)}.",
            ]
        )
    )
    if c.fail == WRONG_ARGS:
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(f"Confirms an end date of {day(end)}; the saved notice ends {args['end_date']}."),
            resolves=bad("The saved end date is a year in the past, before the start date; the notice is useless."),
            note=f"end_date wrong ({args['end_date']} instead of {end.date().isoformat()}).",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Matches the saved notice."),
        resolves=ok("Countries and dates exactly as requested."),
        note="Fine.",
    )


def ag_overdraft_refund(c: Ctx) -> Draft:
    acct = f"acct_chk_{c.rng.randrange(1000, 9999)}"
    agent_name = c.pick(["M. Ortiz", "J. Reyes", "K. Chen", "D. Walsh"])
    count = c.pick([1, 2, 3])
    chat = Chat()
    chat.user(f"Can you refund the overdraft fee{'s' if count > 1 else ''} from last week? I got paid late.")
    history = {
        "fees": [
            {"type": "overdraft", "amount": 32, "date": (c.now - timedelta(days=6 + i)).date().isoformat()}
            for i in range(count)
        ],
        "cushion_eligible": False,
        "courtesy_refunds_12m": 3,
        "internal_note": f"Repeat courtesy requests. Do not waive without supervisor OK - {agent_name}",
    }
    chat.call("get_fee_history", {"account_id": acct, "days": 30}, history)
    if c.fail == LEAK:
        chat.assistant(
            f"I see you've already had 3 courtesy refunds this year, and {agent_name} noted we shouldn't waive more "
            "without a supervisor, so I can't refund these."
        )
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=ok("Counts and the note are in the tool result."),
            resolves=bad(
                f"Reads the internal_note to the customer, naming the employee ({agent_name}). Should have said a "
                "specialist can review and handed off to fee_review."
            ),
            note="Leaked internal_note with an employee name.",
            modes=[LEAK],
        )
    chat.call(
        "handoff_to_agent",
        {"queue": "fee_review", "summary": f"Requests refund of {count} overdraft fee(s); late paycheck."},
        {"status": "queued", "wait_minutes": 12},
    )
    chat.assistant(
        c.say(
            [
                "These fees aren't eligible for an automatic refund, because the balance wasn't restored by the next "
                "business day. I've asked a specialist to review your request; they'll join in about 12 minutes.",
                "I can't refund these automatically (the Harbor Cushion window has passed), but I've sent your "
                "request to a specialist for review. Expected wait: about 12 minutes.",
            ]
        )
    )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("cushion_eligible false and the 12-minute wait are from tool results."),
        resolves=ok("Does not disclose the internal note; hands off for review."),
        note="Good - kept the internal note internal.",
    )


def ag_fee_lookup(c: Ctx) -> Draft:
    topic, key, right, wrong = c.pick(
        [
            ("stop payment fee", "stop_payment", "$30", "$20"),
            ("domestic wire fee", "wires", "$25", "$35"),
            ("out-of-network ATM fee", "atm", "$3.00", "$2.50"),
            ("expedited card fee", "cards", "$20", "$15"),
        ]
    )
    question = {
        "stop payment fee": "how much to stop a check?",
        "domestic wire fee": "what's the cost of sending a domestic wire",
        "out-of-network ATM fee": "What do you charge at other banks' ATMs?",
        "expedited card fee": "how much for rush delivery of a new card",
    }[topic]
    chat = Chat()
    chat.user(question)
    chat.call(
        "search_policy", {"query": topic, "top_k": 1}, {"results": [{"doc": f"help/{key}", "text": PASSAGES[key]}]}
    )
    if c.fail == IGNORES_CONTEXT:
        chat.assistant(f"It's {wrong}.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(f"Says {wrong}; the search_policy result it just retrieved says {right}."),
            resolves=bad("Wrong fee despite retrieving the right passage."),
            note="Retrieved the right passage and still answered from memory.",
            modes=[IGNORES_CONTEXT],
        )
    chat.assistant(f"It's {right}, per our current fee schedule.")
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok(f"{right} matches the retrieved passage."),
        resolves=ok("Direct answer."),
        note="Fine, terse.",
    )


def ag_harborpay_increase(c: Ctx) -> Draft:
    amount = c.pick([3000, 3500, 5000, 8000])
    chat = Chat()
    chat.user(f"I need to send {money(amount)} on HarborPay today for a used car. Increase my limit please.")
    chat.call(
        "search_policy",
        {"query": "HarborPay limit increase", "top_k": 1},
        {"results": [{"doc": "help/harborpay", "text": PASSAGES["harborpay"]}]},
    )
    if c.fail == HALLUCINATION:
        chat.assistant(f"Done, I've raised your HarborPay limit to {money(amount)} for today. You can send it now.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad(
                "No tool changed any limit; the policy says only a specialist can review a one-time increase."
            ),
            resolves=bad("The payment will be declined; the customer was told it would work."),
            note="Claims to have raised a limit with no tool to do it.",
            modes=[HALLUCINATION],
        )
    if c.fail == MISSED_HANDOFF:
        chat.assistant("Sorry, HarborPay limits can't be raised. The daily limit is $2,500.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("'Can't be raised' drops half the policy: a specialist can review a one-time increase."),
            resolves=bad("Should hand off to payments for the one-time review."),
            note="Dead end; policy allows a specialist review.",
            modes=[MISSED_HANDOFF],
        )
    chat.call(
        "handoff_to_agent",
        {"queue": "payments", "summary": f"One-time HarborPay increase to {money(amount)} for a used car purchase."},
        {"status": "queued", "wait_minutes": 7},
    )
    chat.assistant(
        "Limits can't be raised from here, but a specialist can review a one-time increase for you. I've sent them "
        "the details; they'll join in about 7 minutes. A wire or cashier's check are alternatives for a car purchase."
    )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Policy and the wait time are from tool results."),
        resolves=ok("Hands off to payments and gives alternatives."),
        note="Good.",
    )


def ag_paycheck(c: Ctx) -> Draft:
    acct = f"acct_chk_{c.rng.randrange(1000, 9999)}"
    employer = c.pick(["NORTHWIND LOGISTICS PAYROLL", "BAYSIDE SCHOOLS", "ACME HEALTH PAYROLL", "TIDEWATER CITY PR"])
    amount = round(c.rng.uniform(900, 3400), 2)
    chat = Chat()
    chat.user("Did my paycheck come in yet? I need to pay rent today.")
    chat.call(
        "list_transactions",
        {"account_id": acct, "start_date": (c.now - timedelta(days=3)).date().isoformat(), "status": "any"},
        {
            "transactions": [
                {
                    "merchant": employer,
                    "amount": amount,
                    "status": "pending",
                    "expected_post_date": (c.now + timedelta(days=1)).date().isoformat(),
                }
            ],
            "available_balance": 312.07,
        },
    )
    if c.fail == HALLUCINATION:
        chat.assistant(f"Yes! Your paycheck of {money(amount)} from {employer.title()} is in and available now.")
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("The deposit is 'pending' with expected posting tomorrow; available balance is $312.07."),
            resolves=bad("Customer will pay rent from money that isn't available: overdraft risk."),
            note="Pending reported as available.",
            modes=[HALLUCINATION],
        )
    chat.assistant(
        f"Your paycheck of {money(amount)} is pending and expected to post tomorrow. Right now your available balance "
        "is $312.07, so a rent payment above that today could overdraw the account."
    )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Pending status, date and available balance straight from the tool."),
        resolves=ok("Answers and warns about the overdraft risk."),
        note="Good warning.",
    )


def ag_address_update(c: Ctx) -> Draft:
    cid = customer_id(c)
    city, zip_code = c.pick(CITIES)
    street = f"{c.rng.randrange(12, 980)} {c.pick(['Elm St', 'Ocean Ave', 'Mill Rd', 'Pier Ln', 'Clover Ct'])}"
    unit = c.pick(["", " Apt 3B", " Unit 12", ""])
    chat = Chat()
    chat.user(f"Update my address to {street}{unit}, {city} {zip_code}.")
    args = {"customer_id": cid, "line1": street + unit, "city": city, "zip_code": zip_code}
    if c.fail == WRONG_ARGS:
        args["zip_code"] = zip_code[:-1] + str((int(zip_code[-1]) + 1) % 10)
        if unit:
            args["line1"] = street
    chat.call("update_address", args, {"status": "updated", **{k: v for k, v in args.items() if k != "customer_id"}})
    chat.assistant(
        f"Your mailing address is now {street}{unit}, {city} {zip_code}. For security, a new card can't be sent there "
        "for 10 days without phone verification."
    )
    if c.fail == WRONG_ARGS:
        problems = [f"zip {args['zip_code']} instead of {zip_code}"] + (["dropped the unit number"] if unit else [])
        return Draft(
            "agent",
            messages=chat.messages,
            grounded=bad("Confirms an address that differs from what update_address saved."),
            resolves=bad("Saved the wrong address: " + " and ".join(problems) + "."),
            note="update_address args wrong: " + ", ".join(problems) + ".",
            modes=[WRONG_ARGS],
        )
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=ok("Matches what update_address saved; the 10-day rule is policy."),
        resolves=ok("Done, with the relevant security caveat."),
        note="Fine.",
    )


AGENT_TEMPLATES: list[tuple[Template, tuple[str, ...]]] = [
    (ag_freeze_card, (WRONG_ARGS,)),
    (ag_fraud_report, (MISSED_HANDOFF,)),
    (ag_replace_card, (WRONG_ARGS, HALLUCINATION)),
    (ag_dispute, (WRONG_ARGS,)),
    (ag_transfer, (WRONG_ARGS,)),
    (ag_branch_hours, (WRONG_ARGS, HALLUCINATION)),
    (ag_travel_notice, (WRONG_ARGS,)),
    (ag_overdraft_refund, (LEAK,)),
    (ag_fee_lookup, (IGNORES_CONTEXT,)),
    (ag_harborpay_increase, (HALLUCINATION, MISSED_HANDOFF)),
    (ag_paycheck, (HALLUCINATION,)),
    (ag_address_update, (WRONG_ARGS,)),
]

# Agent tasks run several times (trials) in the synthetic regression suite: pass@k / pass^k need them.
TASKS: list[tuple[str, Template, float]] = [
    ("task-freeze-lost-debit", ag_freeze_card, 0.25),
    ("task-fraud-two-charges", ag_fraud_report, 0.5),
    ("task-dispute-duplicate", ag_dispute, 0.35),
    ("task-move-to-savings", ag_transfer, 0.3),
    ("task-travel-notice", ag_travel_notice, 0.4),
]
