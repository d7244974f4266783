"""The built-in 30-problem suite, its difficulties, and the names of the demo's people and agents."""

from __future__ import annotations

import json
import random

SUITE: dict[str, list[tuple[str, str]]] = {
    "Product": [
        ("Looking for a waterproof motorcycle waist bag from hosport, priced from 180 to 505 PHP.", "easy"),
        ("Show me headlight covers in matte black that cost more than 85 PHP.", "easy"),
        ("Find a pack of 10 microfiber car detailing sponges priced between 15 and 37 pesos.", "easy"),
        ("I need a blue power button flex cable replacement for an Oppo A5S.", "easy"),
        ("Looking for a stainless steel insulated tumbler, 900 ml, with a straw lid.", "easy"),
        ("Show me USB-C fast chargers rated 20W or more with free shipping.", "easy"),
        ("Find a children's raincoat in yellow, size M, under 300 PHP.", "easy"),
        ("Show me orange battery-powered calculators (1 piece) that cost over 176 PHP.", "medium"),
        ("Looking for 0.5mm black gel pens, pack of 10, for students, with cash on delivery.", "medium"),
        (
            "Find a dimmable LED garden flood light, 12V, cool white, that supports cash on delivery.",
            "medium",
        ),
    ],
    "Shop": [
        ("Find a shop that sells both a cartoon hair brush and a compact makeup mirror.", "easy"),
        ("Find shops offering patterned cotton face towels with one option between 17 and 60 PHP.", "easy"),
        ("Find a shop with a wall-mounted kitchen cabinet above 410 PHP and a spice rack.", "easy"),
        ("I want a shop that sells a large canvas tote bag and a matching coin purse.", "easy"),
        ("Find a shop with a yellow silicone pot holder with free delivery and a cast iron skillet.", "easy"),
        ("Find a shop that sells silver wired earbuds and a USB-C adapter.", "easy"),
        ("Find shops with a men's 5XL down vest and a short sleeve linen shirt.", "easy"),
        ("Find shops offering black scooters above 1513 PHP and white ones from 1889 to 3315 PHP.", "medium"),
        ("Find a shop with a color-protect hair developer (126 to 210 PHP) and a matching toner.", "medium"),
        (
            "Find a shop that sells a trio lip balm set, a mass-market moisturiser and a single-unit serum.",
            "medium",
        ),
    ],
    "Voucher": [
        ("Show me healthier processed cheese; my budget is 82 and I have a 10% voucher.", "easy"),
        (
            "Find an oily-skin travel size cream and a beige silicone baby bowl within 250 with a voucher.",
            "easy",
        ),
        (
            "Find a dry dog shampoo with free delivery and a flash deal; budget 300, voucher 50 off 250.",
            "easy",
        ),
        ("Show me Oppo A16 phone cases with a stand, cash on delivery, and apply a 15% voucher.", "easy"),
        ("Find floral press-on nails and a lightweight large bike helmet under 900 after vouchers.", "easy"),
        ("Find a thick 40x40 seat cushion; budget 263 with a 20 PHP voucher over 199.", "easy"),
        ("Find a rice cooker under 1200 using the best of two store vouchers.", "easy"),
        ("Combine a shop voucher and a platform voucher to buy two phone chargers under 400.", "medium"),
        ("Find three school supplies from one shop that fit 500 after a tiered voucher.", "medium"),
        ("Pick a laptop stand and a mouse so the cart total after vouchers is closest to 1000.", "medium"),
    ],
}


def suite_json() -> bytes:
    """The built-in 30-problem suite: Product/Shop/Voucher x easy/medium, in the ORO suite format."""
    problems = []
    for category, items in SUITE.items():
        for index, (query, difficulty) in enumerate(items, start=1):
            problems.append(
                {
                    "query": query,
                    "title": f"{category} {index}",
                    "category": category,
                    "difficulty": difficulty,
                    "reward": {"product_id": str(1_000_000_000 + 7919 * len(problems))},
                }
            )
    return json.dumps(problems, indent=1).encode()


# --- names -------------------------------------------------------------------------------------------

ADJECTIVES = (
    "amber azure bold brisk calm cedar clever copper coral crimson dapper deft eager early fair fleet "
    "gentle golden grand hazel honest indigo ivory jade keen lively lucky lunar maple merry misty noble "
    "olive opal patient plucky quiet rapid rustic sage scarlet silver sly solar steady swift tidal "
    "topaz true urban velvet vivid warm wild witty young zesty"
).split()
NOUNS = (
    "badger beacon bison cardinal comet condor coyote crane dolphin eagle falcon ferret finch fox "
    "gecko harbor hare heron ibis jaguar kestrel koala lark lemur lynx magpie marten meadow mink moose "
    "narwhal ocelot orca osprey otter owl panda pelican puffin quail raven robin salmon sparrow stoat "
    "swift tapir tern tiger toucan walrus wren yak zebra"
).split()
AGENT_WORDS = (
    "cartwise dealhound shopscout bargainbot pricepilot voucherwiz basketbrain checkout-ace "
    "findr lazfinder smartcart thrifty pickwise goodbuy aisle-agent scoutly"
).split()


def unique_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if name not in taken:
            taken.add(name)
            return name


def demo_hotkey(seed: int, role: str, index: int) -> str:
    """The SS58 hotkey of demo miner/validator ``index``: the dev key ``//oro-demo/<seed>/<role>/<index>``."""
    from substrateinterface import Keypair

    return str(Keypair.create_from_uri(f"//oro-demo/{seed}/{role}/{index}").ss58_address)


def difficulties(rng: random.Random) -> list[float]:
    """Logit difficulty per problem in suite order; two problems nobody solves, one everybody does."""
    offsets = {"Product": -0.2, "Shop": 0.3, "Voucher": 0.1}
    out = []
    for category, items in SUITE.items():
        for _query, difficulty in items:
            out.append(offsets[category] + (-0.6 if difficulty == "easy" else 0.6) + rng.gauss(0, 0.4))
    out[9] = 6.0  # a dead problem: medium Product
    out[27] = 6.0  # a dead problem: medium Voucher
    out[10] = -6.0  # a giveaway: easy Shop
    return out
