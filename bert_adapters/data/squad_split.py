"""Split a SQuAD v1.1 file by article: train on the first, evaluate on the last.

Only SQuAD's dev file is available here, so training experiments split it by
article (no paragraph or question is shared by the two parts):

  python -m bert_adapters.data.squad_split \
    --input=$SQUAD_DIR/dev-v1.1.json --train_articles=40 --output_dir=runs/squad_split

writes `train.json` (articles 1..40) and `dev.json` (articles 41..48) in the
same v1.1 format, for `run_squad.py --train_file=... --predict_file=...`.
`--dev_articles=K` keeps only the last K articles in `dev.json`.
"""

import json
import sys

from absl import app, flags

from bert_adapters import io_utils


def split_articles(dataset, train_articles, dev_articles=None):
    """(train, dev) SQuAD dicts: the first `train_articles`, then the (last K) rest."""
    articles = dataset.get("data") if isinstance(dataset, dict) else None
    if not isinstance(articles, list):
        raise ValueError("expected a SQuAD v1.1 object with a `data` list of articles")
    if not 0 < train_articles < len(articles):
        raise ValueError(f"--train_articles={train_articles}: the file has {len(articles)} "
                         f"articles; leave at least one for dev")
    rest = articles[train_articles:]
    if dev_articles is not None:
        if dev_articles < 1:
            raise ValueError(f"--dev_articles must be positive, got {dev_articles}")
        rest = rest[-dev_articles:]
    version = dataset.get("version", "1.1")
    return ({"version": version, "data": articles[:train_articles]},
            {"version": version, "data": rest})


def _count(dataset):
    return sum(len(p.get("qas", [])) for a in dataset["data"] for p in a.get("paragraphs", []))


def main(argv):
    del argv
    values = flags.FLAGS
    for name in ("input", "output_dir", "train_articles"):
        if values[name].value is None:
            raise app.UsageError(f"--{name} is required")
    try:
        try:
            dataset = json.loads(io_utils.read_text(values.input))
        except json.JSONDecodeError as err:
            raise ValueError(f"not JSON ({err})") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"not UTF-8 text ({err})") from None
        train, dev = split_articles(dataset, values.train_articles, values.dev_articles)
    except (ValueError, FileNotFoundError) as err:
        print(f"squad_split: error: {values.input}: {err}", file=sys.stderr)
        sys.exit(2)
    io_utils.makedirs(values.output_dir)
    for name, part in (("train.json", train), ("dev.json", dev)):
        path = io_utils.join(values.output_dir, name)
        io_utils.write_text(path, json.dumps(part, ensure_ascii=False))
        print(f"{path}: {len(part['data'])} articles, {_count(part)} questions")


if __name__ == "__main__":
    flags.DEFINE_string("input", None, "A SQuAD v1.1 JSON file (e.g. dev-v1.1.json).")
    flags.DEFINE_integer("train_articles", None, "Articles, from the first, for train.json.")
    flags.DEFINE_integer("dev_articles", None, "Keep only the last K remaining articles in "
                         "dev.json (default: all remaining).")
    flags.DEFINE_string("output_dir", None, "Where train.json and dev.json are written.")
    app.run(main)
