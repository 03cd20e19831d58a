#!/usr/bin/env python3
"""make_data.py: the two small data sets of bench/small/ (issue 12's failure cases), built
deterministically from the CSVs lossd ships (data/), standard library only:

- noisy208.csv: 208 rows of data/breast_cancer.csv (30 features, 2 classes), drawn with
  random.Random(208); the jobs add 20% label noise to the training rows (transform.label_noise).
  The shape of the sonar set (208 rows) the issue was tried on.
- imbalanced214.csv: 214 rows of data/digits.csv, digits 0-5 with 70, 76, 17, 13, 9 and 29 rows
  (the class counts of the glass set, 214 rows, natural imbalance), drawn with random.Random(214).

    python3 bench/small/make_data.py          writes both next to this file
"""
import csv
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data")


def read(name):
    with open(os.path.join(DATA, name), newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(name, header, rows):
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    header, rows = read("breast_cancer.csv")
    write("noisy208.csv", header, random.Random(208).sample(rows, 208))

    header, rows = read("digits.csv")
    counts = {"0": 70, "1": 76, "2": 17, "3": 13, "4": 9, "5": 29}
    rng = random.Random(214)
    out = []
    for digit, k in counts.items():
        out += rng.sample([r for r in rows if r[-1] == digit], k)
    rng.shuffle(out)
    write("imbalanced214.csv", header, out)


if __name__ == "__main__":
    main()
