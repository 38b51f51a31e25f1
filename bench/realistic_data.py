"""Two realistic tables for the defaults benchmark, generated deterministically and committed as CSV
in bench/data/ (rerun `python -m bench.realistic_data` to rebuild them byte for byte):

  churn.csv    3,000 customers of a subscription service: numeric and categorical columns, target
               `churned` (yes/no, about 17% yes) from a logistic model with an interaction and noise.
  houses.csv   2,000 house sales: numeric and categorical columns, target `price_k` (thousands)
               from a nonlinear price model with multiplicative noise.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
SEED = 20_261_129


def churn(rng: np.random.Generator, rows: int = 3000) -> tuple[list[str], list[list[object]]]:
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=rows, p=[0.55, 0.25, 0.2])
    payment = rng.choice(["card", "bank-transfer", "electronic-check", "mailed-check"], size=rows)
    internet = rng.choice(["dsl", "fiber", "none"], size=rows, p=[0.4, 0.45, 0.15])
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    tenure = np.clip(rng.exponential(24, rows), 1, 72).round()
    monthly = np.clip(rng.normal(65, 25, rows) + np.where(internet == "fiber", 20, 0), 18, 150).round(2)
    total = (monthly * tenure * rng.uniform(0.9, 1.05, rows)).round(2)
    calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 85, rows)
    logit = (
        -2.2
        - 0.045 * tenure
        + 0.015 * (monthly - 65)
        + 0.35 * calls
        + np.select([contract == "month-to-month", contract == "one-year"], [1.2, 0.0], -1.3)
        + np.where(payment == "electronic-check", 0.6, 0.0)
        + np.where((internet == "fiber") & (calls >= 3), 0.8, 0.0)
        - 0.006 * (age - 45)
        + rng.normal(0, 0.5, rows)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    header = [
        "tenure_months",
        "monthly_charges",
        "total_charges",
        "support_calls",
        "age",
        "contract",
        "payment_method",
        "internet",
        "region",
        "churned",
    ]
    table = [
        [int(t), m, tc, int(c), int(a), ct, p, i, r, "yes" if y else "no"]
        for t, m, tc, c, a, ct, p, i, r, y in zip(
            tenure, monthly, total, calls, age, contract, payment, internet, region, churned, strict=True
        )
    ]
    return header, table


def houses(rng: np.random.Generator, rows: int = 2000) -> tuple[list[str], list[list[object]]]:
    neighborhoods = ["riverside", "old-town", "hillcrest", "industrial", "lakeside", "suburbs"]
    premium = dict(zip(neighborhoods, [1.15, 1.3, 1.45, 0.75, 1.35, 1.0], strict=True))
    neighborhood = rng.choice(neighborhoods, size=rows)
    condition = rng.choice(["poor", "fair", "good", "excellent"], size=rows, p=[0.1, 0.3, 0.45, 0.15])
    area = np.clip(rng.lognormal(np.log(1600), 0.35, rows), 450, 6000).round()
    bedrooms = np.clip((area / 550 + rng.normal(0, 0.8, rows)).round(), 1, 7)
    bathrooms = np.clip((bedrooms / 2 + rng.normal(0.3, 0.5, rows)).round(), 1, 5)
    age = rng.integers(0, 110, rows)
    lot = np.clip(rng.lognormal(np.log(6000), 0.5, rows), 1200, 60_000).round()
    distance = np.clip(rng.gamma(2.0, 4.0, rows), 0.3, 45).round(1)
    garage = rng.random(rows) < 0.65
    condition_factor = np.select(
        [condition == "poor", condition == "fair", condition == "good"], [0.8, 0.92, 1.0], 1.12
    )
    price = (
        95 * (area / 1000) ** 0.9
        + 12 * bathrooms
        + 4 * bedrooms
        + 9 * np.log(lot / 1000)
        + 25 * garage
        + 40 * np.exp(-distance / 8)
        - 0.35 * age
        + 0.0025 * (age - 60).clip(0) ** 2
    )
    price = (
        price * np.array([premium[n] for n in neighborhood]) * condition_factor * rng.lognormal(0, 0.12, rows)
    ).round(1)
    header = [
        "area_sqft",
        "bedrooms",
        "bathrooms",
        "age_years",
        "lot_sqft",
        "distance_km",
        "garage",
        "neighborhood",
        "condition",
        "price_k",
    ]
    table = [
        [int(a), int(b), int(ba), int(ag), int(lo), d, "yes" if g else "no", n, c, p]
        for a, b, ba, ag, lo, d, g, n, c, p in zip(
            area, bedrooms, bathrooms, age, lot, distance, garage, neighborhood, condition, price, strict=True
        )
    ]
    return header, table


def write(name: str, header: list[str], table: list[list[object]]) -> Path:
    path = DATA_DIR / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
    return path


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name, make in (("churn.csv", churn), ("houses.csv", houses)):
        header, table = make(rng)
        print(write(name, header, table), len(table), "rows")


if __name__ == "__main__":
    main()
