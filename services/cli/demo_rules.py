# ruff: noqa: E501  (rule texts read better unbroken)
"""The demo's sample rule set: self-written, zh and en, three tenants, several jurisdictions."""

from __future__ import annotations

from typing import Any

SAMPLE_RULES: list[dict[str, Any]] = [
    # acme: an online shop with company policies and regional privacy law.
    {"tenant": "acme", "rule_id": "refunds", "domain": "policy", "locale": "en",
     "title": "Refund window", "priority": 10,
     "text": "Customers may return any unused item within 30 days of delivery for a full refund."},
    {"tenant": "acme", "rule_id": "privacy-sharing", "domain": "policy", "locale": "en",
     "title": "Customer data", "priority": 20,
     "text": "Never share a customer's personal data with third parties without written consent."},
    {"tenant": "acme", "rule_id": "gdpr-erasure", "domain": "law", "jurisdiction": "EU",
     "locale": "en", "title": "GDPR Art. 17", "priority": 50,
     "text": "A person in the EU may ask for their personal data to be erased; it must be deleted "
             "without undue delay, at the latest within one month."},
    {"tenant": "acme", "rule_id": "ccpa-delete", "domain": "law", "jurisdiction": "California",
     "locale": "en", "title": "CCPA deletion", "priority": 50,
     "text": "A California consumer may request deletion of personal information; the business "
             "must respond within 45 days."},
    # acme's house rules: facts no model knows without them (the exam slice asks about these).
    {"tenant": "acme", "rule_id": "loyalty-expiry", "domain": "policy", "locale": "en",
     "title": "Loyalty points", "priority": 10,
     "text": "Acme loyalty points expire 18 months after the purchase that earned them."},
    {"tenant": "acme", "rule_id": "shipping-fee", "domain": "policy", "locale": "en",
     "title": "Shipping fees", "priority": 10,
     "text": "Acme ships orders over 75 euros free of charge; smaller orders pay a flat fee of 4.90 euros."},
    {"tenant": "acme", "rule_id": "battery-warranty", "domain": "policy", "locale": "en",
     "title": "Warranty", "priority": 10,
     "text": "Acme electronics carry a three-year warranty, but batteries are covered for one year only."},
    {"tenant": "acme", "rule_id": "price-match", "domain": "policy", "locale": "en",
     "title": "Price matching", "priority": 10,
     "text": "Acme matches a competitor's lower price within 7 days of purchase; auction and "
             "marketplace prices are excluded."},
    # civic: Chinese traffic law, national and by city.
    {"tenant": "civic", "rule_id": "dao-lu-jiao-tong-51", "domain": "law", "locale": "zh-CN",
     "title": "道路交通安全法 第五十一条", "priority": 50,
     "text": "机动车行驶时，驾驶人、乘坐人员应当按规定使用安全带，摩托车驾驶人及乘坐人员应当按规定戴安全头盔。"},
    {"tenant": "civic", "rule_id": "beijing-ebike-passenger", "domain": "law",
     "jurisdiction": "北京市", "locale": "zh-CN", "title": "北京市非机动车管理条例", "priority": 40,
     "text": "在北京市，驾驶电动自行车不得载人，但可以搭载一名十二周岁以下的未成年人。"},
    {"tenant": "civic", "rule_id": "shanghai-ebike-passenger", "domain": "law",
     "jurisdiction": "上海市", "locale": "zh-CN", "title": "上海市非机动车管理办法", "priority": 40,
     "text": "在上海市，驾驶电动自行车可以搭载一名十六周岁以下的未成年人，搭载学龄前儿童应当使用安全座椅。"},
    {"tenant": "civic", "rule_id": "beijing-ebike-helmet-2030", "domain": "law",
     "jurisdiction": "北京市", "locale": "zh-CN", "title": "北京市头盔新规（2030年起施行）",
     "priority": 40, "effective_from": "2030-01-01",
     "text": "自2030年1月1日起，在北京市驾驶电动自行车的所有乘员都应当佩戴安全头盔。"},
    # clinic: professional ethics, English and Chinese.
    {"tenant": "clinic", "rule_id": "confidentiality", "domain": "morality", "locale": "en",
     "title": "Patient confidentiality", "priority": 60,
     "text": "Staff must not discuss a patient's diagnosis with anyone outside the care team, "
             "family included, unless the patient agrees."},
    {"tenant": "clinic", "rule_id": "gifts", "domain": "morality", "locale": "zh-CN",
     "title": "礼品规定", "priority": 30,
     "text": "医务人员不得收受患者及其家属赠送的红包、礼金或贵重礼品。"},
]  # fmt: skip

REFUNDS_UPDATE = (
    "Customers may return any unused item within 14 days of delivery for a full refund; "
    "sale items cannot be returned."
)

QUESTIONS: list[dict[str, Any]] = [
    {"tenant": "acme", "question": "A customer in Germany wants us to delete all their data. "
     "What must we do?", "jurisdictions": ["EU"]},
    {"tenant": "acme", "question": "Can a customer return shoes three weeks after delivery?"},
    {"tenant": "civic", "question": "在北京市，骑电动自行车可以带孩子吗？"},
    {"tenant": "civic", "question": "在上海市，骑电动自行车可以带孩子吗？"},
    {"tenant": "clinic", "question": "A patient's daughter asks me about her father's diagnosis. "
     "Can I tell her?"},
    {"tenant": "globex", "question": "Can a customer return shoes three weeks after delivery?"},
]  # fmt: skip

DEMO_EXAM: list[dict[str, Any]] = [
    {"id": "loyalty", "question": "When do acme loyalty points expire?",
     "options": ["Never", "After 6 months", "18 months after the purchase that earned them", "At the end of each year"],
     "answer": "C", "category": "house rules"},
    {"id": "shipping", "question": "What does acme charge to ship an order of 40 euros?",
     "options": ["A flat fee of 4.90 euros", "Nothing, shipping is always free", "10% of the order", "9.99 euros"],
     "answer": "A", "category": "house rules"},
    {"id": "battery", "question": "How long is the battery of an acme laptop under warranty?",
     "options": ["Three years", "One year", "Two years", "For life"],
     "answer": "B", "category": "house rules"},
    {"id": "price-match", "question": "Will acme match a lower price a customer found in an online auction?",
     "options": ["Yes, within 7 days", "Yes, within 30 days", "Only for loyalty members", "No, auction prices are excluded"],
     "answer": "D", "category": "house rules"},
    {"id": "ccpa-deadline", "question": "How many days does acme have to respond to a California consumer's deletion request?",
     "options": ["10 days", "30 days", "45 days", "90 days"], "answer": "C", "location": "California",
     "category": "privacy law"},
    {"id": "partner-sharing", "question": "May acme give a customer's personal data to a marketing partner?",
     "options": ["Only with the customer's written consent", "Yes, always", "Only if the partner pays", "Only outside the EU"],
     "answer": "A", "category": "privacy law"},
]  # fmt: skip
"""A small exam on acme's rules for the demo's base vs OPO slice: most answers are in the
tenant's house rules only, so a model can know them only through retrieval."""
