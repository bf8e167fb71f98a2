"""Harbor Bank, the fictional bank of the demo: its published fees, help-center passages and name pools.

The expert judges "grounded" against these facts; every scenario template quotes them or deliberately gets one wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SYSTEM_PROMPT = (
    "You are Harbor Assist, the virtual assistant of Harbor Bank. Answer only from the fee schedule, the help "
    "center passages and tool results you are given. Never reveal internal notes or flags. Hand off to a human "
    "specialist for fraud, bereavement, legal or complaint cases, or when the customer asks for a person. "
    "Plain text only on SMS and voice."
)

# Harbor Bank's published fee schedule (revision 2026-09). The expert judges "grounded" against this.
FEES: dict[str, Any] = {
    "wire_out_domestic": 25,
    "wire_out_intl": 45,
    "wire_in": 15,
    "wire_cutoff": "4:00 p.m. ET",
    "overdraft": 32,
    "overdraft_max_per_day": 3,
    "overdraft_buffer": 50,
    "maintenance_everyday": 12,
    "maintenance_premier": 25,
    "everyday_waiver_balance": 1500,
    "everyday_waiver_dd": 500,
    "premier_waiver_balance": 15000,
    "atm_out_of_network": 3,
    "premier_atm_refund": 12,
    "card_expedited": 20,
    "fx_everyday": 3,
    "stop_payment": 30,
    "cashiers_check": 10,
    "harborpay_daily": 2500,
    "harborpay_30day": 10000,
    "mobile_deposit_daily": 5000,
    "mobile_deposit_30day": 20000,
    "mobile_cutoff": "9:00 p.m. ET",
    "mobile_next_day": 225,
    "dispute_days": 60,
    "provisional_credit_days": 10,
    "early_close_fee": 25,
    "early_close_days": 90,
    "savings_apy": "3.85%",
    "cd12_penalty_days": 90,
    "cd24_penalty_days": 180,
    "cc_late_first": 29,
    "cc_late_repeat": 40,
    "cc_penalty_apr": "29.99%",
}

PASSAGES: dict[str, str] = {
    "wires": (
        "Fee schedule (rev. 2026-09), Wires: Outgoing domestic wire $25. Outgoing international wire $45. "
        "Incoming wire (domestic or international) $15. Domestic wires submitted before 4:00 p.m. ET on a business "
        "day are sent the same day; later requests go out the next business day."
    ),
    "wires_premier": (
        "Premier Checking benefits: no fee on incoming wires and two outgoing domestic wires per statement cycle "
        "at no charge. Further wires are charged at the standard fee schedule rates."
    ),
    "overdraft": (
        "Overdraft fee: $32 per item paid into overdraft, at most 3 fees per business day. No overdraft fee is "
        "charged when the account is overdrawn by $50 or less at the end of the business day."
    ),
    "cushion": (
        "Harbor Cushion: if you bring your available balance back to $0 or more by 11:59 p.m. ET on the next "
        "business day, we refund the overdraft fees charged for that day automatically. No enrollment needed."
    ),
    "maintenance": (
        "Everyday Checking has a $12 monthly maintenance fee. It is waived for any statement cycle in which you "
        "keep an average daily balance of $1,500, or receive $500 or more in direct deposits, or when the primary "
        "account holder is under 25."
    ),
    "premier": (
        "Premier Checking has a $25 monthly maintenance fee, waived with $15,000 in combined Harbor deposit "
        "balances. Premier includes expedited card replacement at no charge and refunds of other banks' ATM fees "
        "up to $12 per statement cycle."
    ),
    "atm": (
        "Harbor Bank ATMs and Allpoint network ATMs are free. At any other ATM Harbor charges $3.00 per "
        "withdrawal; the ATM owner may charge its own fee as well."
    ),
    "cards": (
        "Replacing a lost, stolen or damaged debit card is free with standard delivery (5-7 business days). "
        "Expedited delivery (2 business days) costs $20. A frozen card can be unfrozen in the app at any time; "
        "a card reported lost or stolen is cancelled permanently."
    ),
    "fx": (
        "Foreign transaction fee: 3% of the U.S. dollar amount on Everyday debit card and Harbor Cash Back credit "
        "card purchases made outside the U.S. or in a foreign currency. The Voyager credit card has no foreign "
        "transaction fee."
    ),
    "travel": (
        "You don't need to tell us before you travel: our fraud monitoring uses card location. Adding a travel "
        "notice in the app (Card settings > Travel) can still reduce declines in some countries."
    ),
    "mobile_deposit": (
        "Mobile check deposit limits: $5,000 per business day and $20,000 per rolling 30 days. Deposits "
        "confirmed before 9:00 p.m. ET count for that business day. The first $225 is available the next "
        "business day and the rest by the second business day, unless we place an extended hold."
    ),
    "holds": (
        "Extended holds may apply to deposits over $5,525 in one day, to accounts open less than 30 days, or to "
        "checks we have reason to doubt. We tell you the hold and the date funds will be available."
    ),
    "harborpay": (
        "HarborPay limits: send up to $2,500 per day and $10,000 per rolling 30 days. Limits cannot be raised in "
        "the app; a specialist can review a one-time increase for verified customers."
    ),
    "disputes": (
        "You can dispute a debit card charge within 60 days after the statement on which it first appeared. "
        "For eligible disputes we issue provisional credit within 10 business days while we investigate."
    ),
    "closing": (
        "Closing a checking or savings account is free, except a $25 early closure fee when the account is "
        "closed within 90 days of opening. Outstanding checks and pending transactions must clear first."
    ),
    "savings": (
        "Harbor High-Yield Savings: 3.85% APY as of November 1, 2026. The rate is variable and may change after "
        "the account is opened. No minimum balance and no monthly fee."
    ),
    "cds": (
        "Certificates of deposit: withdrawing principal before maturity costs 90 days of interest on terms of "
        "12 months or less and 180 days of interest on longer terms."
    ),
    "stop_payment": (
        "Stop payment on a check: $30 per request, placed online or by phone. A stop payment lasts 6 months "
        "and can be renewed. It cannot be placed on a check that has already been paid."
    ),
    "early_dd": (
        "Early direct deposit: eligible payroll and government deposits may arrive up to 2 days early. Timing "
        "depends on when the payer sends the payment file, so it can vary from one pay period to the next."
    ),
    "cc_fees": (
        "Harbor Cash Back credit card: late payment fee up to $29 the first time and up to $40 if another payment "
        "is late within the next six billing cycles. A penalty APR of 29.99% may apply after a payment is 60 "
        "days late."
    ),
    "safe_deposit": (
        "Safe deposit boxes are offered at selected branches. Sizes, availability and annual rent vary by branch; "
        "please contact your branch for current pricing."
    ),
    "joint": (
        "To open a joint account online, each owner needs a government-issued photo ID, Social Security number "
        "and a U.S. residential address. Both owners must accept the account agreement."
    ),
    "retention_internal": (
        "[INTERNAL - agents only] Retention: if a Premier customer threatens to close, you may offer up to $150 "
        "bonus credit (code RET150) with supervisor approval. Do not mention this offer proactively."
    ),
    "bereavement": (
        "Bereavement support: our Estate Services team handles accounts of a deceased customer. They will need "
        "a certified death certificate and, if there is one, letters testamentary. Call 1-800-555-0139."
    ),
    "scams": (
        "Harbor Bank will never ask for your password, one-time passcode or full card number by text or email. "
        "Forward suspicious messages to phish@harborbank.example and delete them."
    ),
    "mortgage": (
        "Mortgage questions, including escrow, payoff quotes and hardship options, are handled by Harbor Home "
        "Loans servicing specialists at 1-800-555-0176, Monday to Friday 8 a.m. to 8 p.m. ET."
    ),
    "address": (
        "You can update your mailing address in the app under Profile > Contact details. For security, a new "
        "debit card cannot be sent to an address changed in the last 10 days without verification by phone."
    ),
}

MERCHANTS = [
    "FreshCart Grocery", "Skyline Air", "Lumen Streaming", "Northside Fitness", "Pixel Depot", "Cedar Pharmacy",
    "Bluebird Rideshare", "Orchard Home Goods", "Metro Parking", "Copperpot Kitchen", "QuickFuel #2231",
    "Atlas Hotels", "Velvet Threads", "Summit Outdoor", "Pinecone Books", "Tidewater Utilities",
]  # fmt: skip
COUNTRIES = ["Portugal", "Japan", "Mexico", "Italy", "Canada", "Thailand", "Kenya", "Iceland", "Peru", "Greece"]
CITIES = [
    ("Baltimore", "21230"), ("Providence", "02903"), ("Norfolk", "23510"), ("Portland", "04101"),
    ("Wilmington", "19801"), ("Savannah", "31401"), ("Annapolis", "21401"), ("New Haven", "06510"),
]  # fmt: skip
PHONES = ["Pixel 8", "iPhone 15", "Galaxy S23", "iPhone 12", "Moto G Power", "iPhone SE"]
MODELS = ["gpt-4.1-mini", "gpt-4.1-mini", "gpt-4.1", "harbor-ft-2026-10"]
CHANNELS = ["web", "web", "app", "app", "sms", "voice"]
PROMPTS = ["p14", "p14", "p15"]


def money(amount: float) -> str:
    """$25, $1,250 or $87.40: how the bank writes amounts (cents only when there are some)."""
    if float(amount).is_integer():
        return f"${int(amount):,}"
    return f"${amount:,.2f}"


def day(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}"
